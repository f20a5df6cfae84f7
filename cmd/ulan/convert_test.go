package main

import (
	"bytes"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine"
	"github.com/ulan-ai/ulan/engine/convert"
	"github.com/ulan-ai/ulan/engine/gguf"
	"github.com/ulan-ai/ulan/engine/testmodel"
)

// convertTo converts dir into a new file under tmp with the preset's name
// (so that general.name matches testmodel's) and returns its path and what
// the command reported.
func convertTo(t *testing.T, dir, tmp, name, typ string) (string, string) {
	t.Helper()
	out := filepath.Join(tmp, "converted-"+typ+".gguf")
	var report bytes.Buffer
	require.NoError(t, convertDir(dir, out, convertOptions{want: convert.Types[typ], name: name, force: true, stderr: &report}))
	return out, report.String()
}

// sameGGUF requires the two files to hold the same metadata and the same
// tensors (see sameTensors).
func sameGGUF(t *testing.T, want, got string, sub map[string]string) {
	t.Helper()
	require.Equal(t, openGGUF(t, want).KVs(), openGGUF(t, got).KVs(), "metadata")
	sameTensors(t, want, got, sub)
}

// openGGUF opens a GGUF file for the rest of the test.
func openGGUF(t *testing.T, path string) *gguf.File {
	t.Helper()
	f, err := gguf.Open(path)
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	return f
}

// TestConvertMatchesTestmodel converts testmodel's Hugging Face directories
// and requires the files testmodel writes from the same draws: the f32
// conversion is byte for byte testmodel's f32 file, which llama.cpp made
// the committed goldens from (so they apply to it); bf16 and q8_0 hold
// the bytes of testmodel's BF16 and Q8_0 files except attn_k_b, whose
// 16-value rows llama.cpp's converter writes as F16 (testmodel's F16
// file's); an FP8 directory with an MTP layer gives the F32 file of its
// decoded values, without the MTP layer.
func TestConvertMatchesTestmodel(t *testing.T) {
	tmp, err := os.MkdirTemp(testmodel.TempRoot(), "ulan-convert-")
	require.NoError(t, err)
	defer os.RemoveAll(tmp)
	// ref writes testmodel's file of c in typ once; tag names the options.
	ref := func(c testmodel.V3, typ gguf.Type, tag string, opts ...testmodel.WriteOption) string {
		c.Type = typ
		p := filepath.Join(tmp, c.Name+"-"+typ.String()+tag+".gguf")
		if _, err := os.Stat(p); err != nil {
			require.NoError(t, c.WriteFile(p, 1, opts...))
		}
		return p
	}
	hfDir := func(c testmodel.V3, dtype string, opts ...testmodel.HFOption) string {
		d := filepath.Join(tmp, c.Name+"-hf-"+dtype)
		if _, err := os.Stat(d); err != nil {
			require.NoError(t, c.WriteHFDir(d, 1, dtype, opts...))
		}
		return d
	}
	v3, v2 := testmodel.TinyV3(), testmodel.TinyV2()
	kB := func(c testmodel.V3) map[string]string {
		m := map[string]string{}
		for l := range c.Layers {
			m["blk."+strconv.Itoa(l)+".attn_k_b.weight"] = ref(c, gguf.TypeF16, "")
		}
		return m
	}

	t.Run("v3 f32", func(t *testing.T) {
		got, _ := convertTo(t, hfDir(v3, testmodel.HFF32), tmp, v3.Name, "f32")
		a, err := os.ReadFile(ref(v3, gguf.TypeF32, ""))
		require.NoError(t, err)
		b, err := os.ReadFile(got)
		require.NoError(t, err)
		require.True(t, bytes.Equal(a, b), "the converted file is not testmodel's f32 file")
	})
	t.Run("v2 f32", func(t *testing.T) {
		skipUnderRace(t)
		got, _ := convertTo(t, hfDir(v2, testmodel.HFF32), tmp, v2.Name, "f32")
		sameGGUF(t, ref(v2, gguf.TypeF32, ""), got, nil)
	})
	t.Run("v3 f16", func(t *testing.T) {
		skipUnderRace(t)
		got, _ := convertTo(t, hfDir(v3, testmodel.HFF32), tmp, v3.Name, "f16")
		sameGGUF(t, ref(v3, gguf.TypeF16, ""), got, nil)
	})
	t.Run("v3 q8_0", func(t *testing.T) {
		skipUnderRace(t)
		got, report := convertTo(t, hfDir(v3, testmodel.HFF32), tmp, v3.Name, "q8_0")
		require.Contains(t, report, "attn_k_b.weight (3 tensors): rows of 16 values are not whole Q8_0 blocks")
		sameGGUF(t, ref(v3, gguf.TypeQ8_0, ""), got, kB(v3))
	})
	t.Run("v3 bf16 from bf16", func(t *testing.T) {
		skipUnderRace(t)
		got, _ := convertTo(t, hfDir(v3, testmodel.HFBF16), tmp, v3.Name, "bf16")
		sameGGUF(t, ref(v3, gguf.TypeBF16, ""), got, nil)
	})
	t.Run("v3 f32 from fp8 with mtp", func(t *testing.T) {
		got, _ := convertTo(t, hfDir(v3, testmodel.HFFP8, testmodel.WithMTP()), tmp, v3.Name, "f32")
		sameTensors(t, ref(v3, gguf.TypeF32, "-fp8ref", testmodel.WithFP8Reference()), got, nil)
	})
}

// skipUnderRace skips a conversion that -race makes take a minute or more
// (the quantizers and the file writes are plain Go); .ci/run runs the
// conversion tests again without -race.
func skipUnderRace(t *testing.T) {
	if raceEnabled {
		t.Skip("slow under -race; CI runs it without")
	}
}

// sameTensors requires the two files to hold the same tensors (names,
// order, types, shapes, bytes); sub names tensors that should instead equal
// those of another file (the Q8_0 fallbacks).
func sameTensors(t *testing.T, want, got string, sub map[string]string) {
	t.Helper()
	wf, gf := openGGUF(t, want), openGGUF(t, got)
	wt, gt := wf.Tensors(), gf.Tensors()
	require.Len(t, gt, len(wt))
	for i, w := range wt {
		g := gt[i]
		require.Equal(t, w.Name, g.Name)
		ref := wf
		if p, ok := sub[w.Name]; ok {
			sf := openGGUF(t, p)
			w, _ = sf.Tensor(w.Name)
			ref = sf
		}
		require.Equal(t, w.Type, g.Type, w.Name)
		require.Equal(t, w.Dims, g.Dims, w.Name)
		require.True(t, bytes.Equal(ref.Data(w), gf.Data(g)), "%s: bytes differ", w.Name)
	}
}

// convertPrompt is a prompt then decode steps: every row is compared.
var convertPrompt = []int32{0, 1563, 2910, 4, 77, 12000, 5, 90000, 31, 2}

// modelLogits runs convertPrompt (all rows) then three decode steps on the
// model at path (a file or a directory) and returns every row.
func modelLogits(t *testing.T, path string) [][]float32 {
	t.Helper()
	lm, err := loadModel(path, 2, io.Discard)
	require.NoError(t, err)
	defer lm.Close()
	r, err := engine.NewRunner(lm.model, lm.backend, engine.RunnerConfig{CacheBytes: 16 << 20})
	require.NoError(t, err)
	seq := r.NewSequence()
	rows, err := r.Step([]engine.Work{{Seq: seq, Tokens: convertPrompt, AllLogits: true}})
	require.NoError(t, err)
	vocab := len(rows[0]) / len(convertPrompt)
	var out [][]float32
	for p := range convertPrompt {
		out = append(out, append([]float32(nil), rows[0][p*vocab:(p+1)*vocab]...))
	}
	for _, tok := range []int32{7, 300, 129000} {
		rows, err := r.Step([]engine.Work{{Seq: seq, Tokens: []int32{tok}}})
		require.NoError(t, err)
		out = append(out, append([]float32(nil), rows[0]...))
	}
	return out
}

func maxDiff(a, b [][]float32) float64 {
	worst := 0.0
	for i := range a {
		for j := range a[i] {
			worst = max(worst, math.Abs(float64(a[i][j]-b[i][j])))
		}
	}
	return worst
}

// TestConvertedLogits runs converted files and their source directories
// through the engine: an f32 file gives the directory's logits (1e-5), and
// so does one converted from FP8, whose values are the directory's decoded
// FP8 exactly (the engine's FP8 dot sums per 128-value block, so rounding
// differs a little).
func TestConvertedLogits(t *testing.T) {
	if testing.Short() {
		t.Skip("runs four tiny models")
	}
	tmp, err := os.MkdirTemp(testmodel.TempRoot(), "ulan-convert-logits-")
	require.NoError(t, err)
	defer os.RemoveAll(tmp)
	for _, tc := range []struct {
		name, dtype string
		tol         float64
	}{
		{"f32", testmodel.HFF32, 1e-5},
		{"fp8", testmodel.HFFP8, 1e-4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(tmp, "tiny-v3-"+tc.dtype)
			require.NoError(t, testmodel.TinyV3().WriteHFDir(dir, 1, tc.dtype))
			got, _ := convertTo(t, dir, tmp, "", "f32")
			d := maxDiff(modelLogits(t, dir), modelLogits(t, got))
			t.Logf("%s directory vs its f32 conversion: max |Δlogit| %.3g", tc.name, d)
			require.LessOrEqual(t, d, tc.tol)
		})
	}
}

// TestConvertRefusesBadInput checks the command's errors.
func TestConvertRefusesBadInput(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "tiny")
	require.NoError(t, testmodel.TinyV2().WriteHFDir(dir, 1, testmodel.HFF32, testmodel.WithShards(1)))
	out := filepath.Join(tmp, "out.gguf")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"format", []string{"--to", "safetensors", "--type", "f32", dir, out}, `--to "safetensors": only gguf`},
		{"type", []string{"--type", "q4_k", dir, out}, `--type "q4_k": use q8_0, f16, bf16 or f32`},
		{"no type", []string{dir, out}, `--type "": use q8_0, f16, bf16 or f32`},
		{"file", []string{"--type", "f32", filepath.Join(dir, "config.json"), out}, "is not a directory"},
		{"missing", []string{"--type", "f32", filepath.Join(tmp, "nope"), out}, "no such file or directory"},
		{"args", []string{"--type", "f32", dir}, "accepts 2 arg(s)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := ulan(t, "", append([]string{"model", "convert"}, tc.args...)...)
			require.Equal(t, 1, code)
			require.Contains(t, errOut, tc.want)
			_, err := os.Stat(out)
			require.ErrorIs(t, err, os.ErrNotExist)
		})
	}

	require.NoError(t, os.WriteFile(out, []byte("keep"), 0o644))
	code, _, errOut := ulan(t, "", "model", "convert", "--type", "f32", dir, out)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "exists: pass --force to replace it")
	b, _ := os.ReadFile(out)
	require.Equal(t, "keep", string(b))

	// A tensor missing from the shard: the error names it and the
	// directory, and the existing output stays.
	bad := filepath.Join(tmp, "bad")
	require.NoError(t, os.Mkdir(bad, 0o755))
	for _, f := range []string{"config.json", "tokenizer.json", "tokenizer_config.json"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(bad, f), b, 0o644))
	}
	cfg, err := os.ReadFile(filepath.Join(dir, "config.json"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(bad, "config.json"), bytes.Replace(cfg, []byte(`"num_hidden_layers": 3`), []byte(`"num_hidden_layers": 4`), 1), 0o644))
	require.NoError(t, os.Symlink(filepath.Join(dir, "model.safetensors"), filepath.Join(bad, "model.safetensors")))
	code, _, errOut = ulan(t, "", "model", "convert", "--type", "f32", "--force", bad, out)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, `tensor "model.layers.3.input_layernorm.weight" is missing`)
	require.Contains(t, errOut, bad)
	b, _ = os.ReadFile(out)
	require.Equal(t, "keep", string(b))

	// No tokenizer.json.
	require.NoError(t, os.Remove(filepath.Join(bad, "tokenizer.json")))
	require.NoError(t, os.WriteFile(filepath.Join(bad, "config.json"), cfg, 0o644))
	code, _, errOut = ulan(t, "", "model", "convert", "--type", "f32", "--force", bad, out)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "tokenizer.json")
	require.True(t, strings.Contains(errOut, "no such file"), errOut)
}
