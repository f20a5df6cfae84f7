package optime_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"math"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine"
	_ "github.com/ulan-ai/ulan/engine/arch/deepseekv3"
	_ "github.com/ulan-ai/ulan/engine/arch/deepseekv4"
	"github.com/ulan-ai/ulan/engine/cpu"
	"github.com/ulan-ai/ulan/engine/gguf"
	"github.com/ulan-ai/ulan/engine/optime"
	"github.com/ulan-ai/ulan/engine/testmodel"
)

// untimed are the methods of engine.Context that do no work of their own.
var untimed = []string{"Close", "Floats", "Input", "Reshape", "Slice", "TileMaxima"}

// TestEveryOpIsTimed: ops.go times every method of engine.Context but the
// untimed ones, so an operation added to the interface is not silently
// passed through untimed.
func TestEveryOpIsTimed(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "ops.go", nil, 0)
	require.NoError(t, err)
	var timed []string
	for _, d := range f.Decls {
		if fn, ok := d.(*ast.FuncDecl); ok && fn.Recv != nil {
			timed = append(timed, fn.Name.Name)
		}
	}
	var want []string
	it := reflect.TypeFor[engine.Context]()
	for i := range it.NumMethod() {
		if name := it.Method(i).Name; !slices.Contains(untimed, name) {
			want = append(want, name)
		}
	}
	slices.Sort(timed)
	require.Equal(t, want, timed)
}

// TestTimesSteps: a timed backend's steps give the untimed backend's
// logits bit for bit, and record each operation a V3 and a V4 step runs,
// products by weight, with calls and time; Reset forgets them.
func TestTimesSteps(t *testing.T) {
	dir := t.TempDir()
	for _, m := range []struct {
		name  string
		write func(string) error
		ops   []string
	}{
		{"v3", func(p string) error { return testmodel.TinyV3().WriteFile(p, 1) }, []string{"Attention", "ExpertFFN", "RMSNorm", "Rope"}},
		{"v4", func(p string) error { return testmodel.TinyV4().WriteFile(p, 1) }, []string{"SparseAttention", "HyperPre", "Compress", "ExpertFFN"}},
	} {
		t.Run(m.name, func(t *testing.T) {
			path := filepath.Join(dir, m.name+".gguf")
			require.NoError(t, m.write(path))
			f, err := gguf.Open(path)
			require.NoError(t, err)
			defer f.Close()
			logits := func(b engine.Backend, model engine.Model) [][]float32 {
				r, err := engine.NewRunner(model, b, engine.RunnerConfig{CacheBytes: 64 << 20})
				require.NoError(t, err)
				seqs := []*engine.Sequence{r.NewSequence(), r.NewSequence()}
				rows, err := r.Step([]engine.Work{{Seq: seqs[0], Tokens: []int32{5, 6, 7, 8, 9}}, {Seq: seqs[1], Tokens: []int32{3, 4}}})
				require.NoError(t, err)
				out := make([][]float32, len(rows))
				for i, row := range rows {
					out[i] = slices.Clone(row)
				}
				return out
			}
			plain := cpu.New(cpu.WithThreads(2))
			model, err := engine.LoadGGUF(f, plain)
			require.NoError(t, err)
			want := logits(plain, model)
			timed := optime.New(plain)
			got := logits(timed, model)
			for i := range want {
				for j := range want[i] {
					require.Equal(t, math.Float32bits(want[i][j]), math.Float32bits(got[i][j]), "row %d logit %d", i, j)
				}
			}
			ops := timed.Ops()
			var names []string
			matmuls := 0
			for i, op := range ops {
				require.Positive(t, op.Calls, op.Name)
				require.Positive(t, op.Time, op.Name)
				if i > 0 {
					require.GreaterOrEqual(t, ops[i-1].Time, op.Time, "longest first")
				}
				names = append(names, op.Name)
				if strings.HasPrefix(op.Name, "MatMul [") {
					matmuls++
				}
			}
			for _, want := range m.ops {
				require.Contains(t, names, want)
			}
			require.Greater(t, matmuls, 3, "products are keyed by weight: %v", names)
			timed.Reset()
			require.Empty(t, timed.Ops())
		})
	}
}
