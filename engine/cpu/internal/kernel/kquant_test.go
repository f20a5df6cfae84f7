package kernel

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine/gguf"
)

// kqFormat bundles one weight format with its kernels, its paired
// activation format and the independent decoders of kquant_ref_test.go.
type kqFormat struct {
	name            string
	blockLen, wSize int
	xName           string
	xSize           int
	ggufType        gguf.Type

	dequant     func(blocks []byte, dst []float32)
	quantize    func(x []float32, dst []byte) // the _ref weight quantizer
	actQuantize func(x []float32, dst []byte) // the vec_dot_type quantizer
	dot         func(w, x []byte, nBlocks int) float32
	generic     func(w, x []byte, nBlocks int) float32
	// ints is the implementation's integer part of one block product: the
	// 32-value sum in lanes[0], or the K-quant lanes and min term.
	ints func(w, x []byte) (lanes [8]int32, summ int32)

	decode    func(block []byte) kqRefBlock
	actDecode func(block []byte) kqRefAct
	halves    []int // byte offsets of the weight block's f16 fields

	// rms bounds the round trip's RMS error relative to the RMS of a
	// Gaussian row: about 1.4 times step/√12, the step being a block's
	// range over its levels (for 32 Gaussian values the range is about
	// 4.2σ, so Q4_0 expects 4.2/15/√12 ≈ 0.08 and Q5_0 0.04; the K-quants'
	// fitted scales and Q6_K's 16-value groups do a little better; observed:
	// Q4_0 0.083, Q4_1 0.08, Q5_0 0.047, Q5_1 0.037, Q4_K 0.072, Q5_K 0.037,
	// Q6_K 0.021).
	rms float64
}

func lanes0(s int32) ([8]int32, int32) { return [8]int32{s}, 0 }

var kqFormats = []*kqFormat{
	{
		name: "Q4_0", blockLen: Q4_0BlockLen, wSize: Q4_0BlockSize, xName: "Q8_0", xSize: Q8_0BlockSize, ggufType: gguf.TypeQ4_0,
		dequant: DequantQ4_0, quantize: QuantizeQ4_0, actQuantize: QuantizeQ8_0, dot: DotQ4_0, generic: dotQ4_0Generic,
		ints: func(w, x []byte) ([8]int32, int32) {
			return lanes0(sumQ4_0((*[Q4_0BlockSize]byte)(w), (*[Q8_0BlockSize]byte)(x)))
		},
		decode: kqDecodeQ4_0, actDecode: kqDecodeQ8_0, halves: []int{0}, rms: 0.12,
	},
	{
		name: "Q4_1", blockLen: Q4_1BlockLen, wSize: Q4_1BlockSize, xName: "Q8_1", xSize: Q8_1BlockSize, ggufType: gguf.TypeQ4_1,
		dequant: DequantQ4_1, quantize: QuantizeQ4_1, actQuantize: QuantizeQ8_1, dot: DotQ4_1, generic: dotQ4_1Generic,
		ints: func(w, x []byte) ([8]int32, int32) {
			return lanes0(sumQ4_1((*[Q4_1BlockSize]byte)(w), (*[Q8_1BlockSize]byte)(x)))
		},
		decode: kqDecodeQ4_1, actDecode: kqDecodeQ8_1, halves: []int{0, 2}, rms: 0.12,
	},
	{
		name: "Q5_0", blockLen: Q5_0BlockLen, wSize: Q5_0BlockSize, xName: "Q8_0", xSize: Q8_0BlockSize, ggufType: gguf.TypeQ5_0,
		dequant: DequantQ5_0, quantize: QuantizeQ5_0, actQuantize: QuantizeQ8_0, dot: DotQ5_0, generic: dotQ5_0Generic,
		ints: func(w, x []byte) ([8]int32, int32) {
			return lanes0(sumQ5_0((*[Q5_0BlockSize]byte)(w), (*[Q8_0BlockSize]byte)(x)))
		},
		decode: kqDecodeQ5_0, actDecode: kqDecodeQ8_0, halves: []int{0}, rms: 0.065,
	},
	{
		name: "Q5_1", blockLen: Q5_1BlockLen, wSize: Q5_1BlockSize, xName: "Q8_1", xSize: Q8_1BlockSize, ggufType: gguf.TypeQ5_1,
		dequant: DequantQ5_1, quantize: QuantizeQ5_1, actQuantize: QuantizeQ8_1, dot: DotQ5_1, generic: dotQ5_1Generic,
		ints: func(w, x []byte) ([8]int32, int32) {
			return lanes0(sumQ5_1((*[Q5_1BlockSize]byte)(w), (*[Q8_1BlockSize]byte)(x)))
		},
		decode: kqDecodeQ5_1, actDecode: kqDecodeQ8_1, halves: []int{0, 2}, rms: 0.06,
	},
	{
		name: "Q4_K", blockLen: Q4_KBlockLen, wSize: Q4_KBlockSize, xName: "Q8_K", xSize: Q8_KBlockSize, ggufType: gguf.TypeQ4_K,
		dequant: DequantQ4_K, quantize: QuantizeQ4_K, actQuantize: QuantizeQ8_K, dot: DotQ4_K, generic: dotQ4_KGeneric,
		ints: func(w, x []byte) ([8]int32, int32) {
			return lanesQ4_K((*[Q4_KBlockSize]byte)(w), (*[Q8_KBlockSize]byte)(x))
		},
		decode: kqDecodeQ4_K, actDecode: kqDecodeQ8_K, halves: []int{0, 2}, rms: 0.11,
	},
	{
		name: "Q5_K", blockLen: Q5_KBlockLen, wSize: Q5_KBlockSize, xName: "Q8_K", xSize: Q8_KBlockSize, ggufType: gguf.TypeQ5_K,
		dequant: DequantQ5_K, quantize: QuantizeQ5_K, actQuantize: QuantizeQ8_K, dot: DotQ5_K, generic: dotQ5_KGeneric,
		ints: func(w, x []byte) ([8]int32, int32) {
			return lanesQ5_K((*[Q5_KBlockSize]byte)(w), (*[Q8_KBlockSize]byte)(x))
		},
		decode: kqDecodeQ5_K, actDecode: kqDecodeQ8_K, halves: []int{0, 2}, rms: 0.06,
	},
	{
		name: "Q6_K", blockLen: Q6_KBlockLen, wSize: Q6_KBlockSize, xName: "Q8_K", xSize: Q8_KBlockSize, ggufType: gguf.TypeQ6_K,
		dequant: DequantQ6_K, quantize: QuantizeQ6_K, actQuantize: QuantizeQ8_K, dot: DotQ6_K, generic: dotQ6_KGeneric,
		ints: func(w, x []byte) ([8]int32, int32) {
			return lanesQ6_K((*[Q6_KBlockSize]byte)(w), (*[Q8_KBlockSize]byte)(x)), 0
		},
		decode: kqDecodeQ6_K, actDecode: kqDecodeQ8_K, halves: []int{208}, rms: 0.03,
	},
}

// kqRandHalf returns a half of random sign and magnitude 2^[−8, 2).
func kqRandHalf(r *rand.Rand) uint16 {
	v := math.Exp2(r.Float64()*10 - 8)
	if r.IntN(2) == 0 {
		v = -v
	}
	return F32ToF16(float32(v))
}

// kqRandBlocks returns nb blocks of size bytes of random bits, with the
// f16 fields at halves set to ordinary values (no NaN or Inf scales).
func kqRandBlocks(r *rand.Rand, nb, size int, halves []int) []byte {
	b := make([]byte, nb*size)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	for i := range nb {
		for _, off := range halves {
			binary.LittleEndian.PutUint16(b[i*size+off:], kqRandHalf(r))
		}
	}
	return b
}

// kqGaussRow returns n Gaussian values times scale.
func kqGaussRow(r *rand.Rand, n int, scale float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64() * scale)
	}
	return x
}

// kqActRow quantizes a Gaussian activation row for format f.
func kqActRow(r *rand.Rand, f *kqFormat, nb int) []byte {
	x := make([]byte, nb*f.xSize)
	f.actQuantize(kqGaussRow(r, nb*f.blockLen, 1), x)
	return x
}

func kqHalf(b []byte, off int, h uint16) { binary.LittleEndian.PutUint16(b[off:], h) }

func TestKQuantBlockSizes(t *testing.T) {
	t.Parallel()
	// ggml-common.h's static_asserts, with the sizes gguf-py lists.
	want := map[string][2]int{
		"Q4_0": {32, 18}, "Q4_1": {32, 20}, "Q5_0": {32, 22}, "Q5_1": {32, 24},
		"Q4_K": {256, 144}, "Q5_K": {256, 176}, "Q6_K": {256, 210},
	}
	for _, f := range kqFormats {
		require.Equal(t, want[f.name], [2]int{f.blockLen, f.wSize}, f.name)
		require.Equal(t, uint64(f.blockLen), f.ggufType.BlockSize(), f.name)
		require.Equal(t, uint64(f.wSize), f.ggufType.BytesPerBlock(), f.name)
	}
	require.Equal(t, [2]int{32, 36}, [2]int{Q8_1BlockLen, Q8_1BlockSize})
	require.Equal(t, [2]int{256, 292}, [2]int{Q8_KBlockLen, Q8_KBlockSize})
	// (engine/gguf sizes Q8_1 at 40 bytes, as gguf-py's table does from
	// when d and s were float32; ggml's block_q8_1 is 36. No GGUF file
	// stores Q8_1, which is only an activation format.)
	require.Equal(t, uint64(Q8_KBlockSize), gguf.TypeQ8_K.BytesPerBlock())
	require.Equal(t, uint64(Q8_KBlockLen), gguf.TypeQ8_K.BlockSize())
}

// TestKQuantDequantKnown dequantizes one hand-built block per format and
// checks every value exactly. The expected values are exact binary
// fractions, so any float32 rounding in the kernel would show.
func TestKQuantDequantKnown(t *testing.T) {
	t.Parallel()
	check := func(t *testing.T, dequant func([]byte, []float32), block []byte, want []float32) {
		t.Helper()
		got := make([]float32, len(want))
		dequant(block, got)
		for i := range want {
			require.Equal(t, want[i], got[i], "value %d", i)
		}
	}

	t.Run("Q4_0", func(t *testing.T) {
		// d = 0.5 (half 0x3800); qs[j] = j | (15−j)<<4, so value j has
		// nibble j and value 16+j nibble 15−j; value = (nibble − 8)·0.5.
		b := make([]byte, Q4_0BlockSize)
		kqHalf(b, 0, 0x3800)
		for j := range 16 {
			b[2+j] = byte(j) | byte(15-j)<<4
		}
		check(t, DequantQ4_0, b, []float32{
			-4, -3.5, -3, -2.5, -2, -1.5, -1, -0.5, 0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5,
			3.5, 3, 2.5, 2, 1.5, 1, 0.5, 0, -0.5, -1, -1.5, -2, -2.5, -3, -3.5, -4,
		})
	})

	t.Run("Q4_1", func(t *testing.T) {
		// d = 0.25 (0x3400), m = −1 (0xBC00), the nibbles of Q4_0's
		// block; value = nibble·0.25 − 1.
		b := make([]byte, Q4_1BlockSize)
		kqHalf(b, 0, 0x3400)
		kqHalf(b, 2, 0xBC00)
		for j := range 16 {
			b[4+j] = byte(j) | byte(15-j)<<4
		}
		check(t, DequantQ4_1, b, []float32{
			-1, -0.75, -0.5, -0.25, 0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75, 2, 2.25, 2.5, 2.75,
			2.75, 2.5, 2.25, 2, 1.75, 1.5, 1.25, 1, 0.75, 0.5, 0.25, 0, -0.25, -0.5, -0.75, -1,
		})
	})

	t.Run("Q5_0", func(t *testing.T) {
		// d = 1 (0x3C00); qs[j] = j | j<<4; qh = 0xAAAA5555 sets the fifth
		// bit of the even values 0…15 and of the odd values 16+j. Value j
		// = j + 16·[j even] − 16; value 16+j = j + 16·[j odd] − 16.
		b := make([]byte, Q5_0BlockSize)
		kqHalf(b, 0, 0x3C00)
		binary.LittleEndian.PutUint32(b[2:], 0xAAAA5555)
		for j := range 16 {
			b[6+j] = byte(j) | byte(j)<<4
		}
		check(t, DequantQ5_0, b, []float32{
			0, -15, 2, -13, 4, -11, 6, -9, 8, -7, 10, -5, 12, -3, 14, -1,
			-16, 1, -14, 3, -12, 5, -10, 7, -8, 9, -6, 11, -4, 13, -2, 15,
		})
	})

	t.Run("Q5_1", func(t *testing.T) {
		// d = 0.5 (0x3800), m = 2 (0x4000); qs[j] = (15−j) | j<<4; qh =
		// 0x0000FFFF sets the fifth bit of values 0…15 only. Value j =
		// (31−j)·0.5 + 2, value 16+j = j·0.5 + 2.
		b := make([]byte, Q5_1BlockSize)
		kqHalf(b, 0, 0x3800)
		kqHalf(b, 2, 0x4000)
		binary.LittleEndian.PutUint32(b[4:], 0x0000FFFF)
		for j := range 16 {
			b[8+j] = byte(15-j) | byte(j)<<4
		}
		check(t, DequantQ5_1, b, []float32{
			17.5, 17, 16.5, 16, 15.5, 15, 14.5, 14, 13.5, 13, 12.5, 12, 11.5, 11, 10.5, 10,
			2, 2.5, 3, 3.5, 4, 4.5, 5, 5.5, 6, 6.5, 7, 7.5, 8, 8.5, 9, 9.5,
		})
	})

	// The K-quant scale bytes below pack, by hand, the sub-block scales
	// sc = 1 2 3 63 33 17 48 5 and mins m = 0 1 62 7 40 2 16 63:
	//	bytes 0–3:  sc[j] | (sc[j+4]>>4)<<6 = 1|2<<6, 2|1<<6, 3|3<<6, 63|0<<6 = 81 42 C3 3F
	//	bytes 4–7:  m[j]  | (m[j+4]>>4)<<6  = 0|2<<6, 1|0<<6, 62|1<<6, 7|3<<6 = 80 01 7E C7
	//	bytes 8–11: sc[j+4]&15 | (m[j+4]&15)<<4 = 1|8<<4, 1|2<<4, 0|0<<4, 5|15<<4 = 81 21 00 F5
	kScales := []byte{0x81, 0x42, 0xC3, 0x3F, 0x80, 0x01, 0x7E, 0xC7, 0x81, 0x21, 0x00, 0xF5}
	kSc := []float32{1, 2, 3, 63, 33, 17, 48, 5}
	kM := []float32{0, 1, 62, 7, 40, 2, 16, 63}
	// kQ4 is the nibble pattern of both K blocks: qs[32c+l] = l%16 |
	// (15 − l%16)<<4, so in sub-block s value l is l%16 for even s
	// (low nibbles) and 15 − l%16 for odd s (high nibbles).
	kQ4 := func(s, l int) float32 {
		if s%2 == 0 {
			return float32(l % 16)
		}
		return float32(15 - l%16)
	}

	t.Run("Q4_K", func(t *testing.T) {
		// d = 1 (0x3C00), dmin = 0.5 (0x3800): value 32s+l = sc[s]·q − 0.5·m[s].
		b := make([]byte, Q4_KBlockSize)
		kqHalf(b, 0, 0x3C00)
		kqHalf(b, 2, 0x3800)
		copy(b[4:], kScales)
		for i := range 128 {
			b[16+i] = byte(i%32%16) | byte(15-i%32%16)<<4
		}
		want := make([]float32, 256)
		for s := range 8 {
			for l := range 32 {
				want[32*s+l] = kSc[s]*kQ4(s, l) - 0.5*kM[s]
			}
		}
		// Spot values, by hand: value 0 = 1·0 − 0; value 33 (s 1, q 14) =
		// 2·14 − 0.5; value 81 (s 2, q 1) = 3·1 − 31; value 96 (s 3, q 15)
		// = 63·15 − 3.5; value 133 (s 4, q 5) = 33·5 − 20; value 224
		// (s 7, q 15) = 5·15 − 31.5; value 255 (s 7, q 0) = −31.5.
		for i, v := range map[int]float32{0: 0, 33: 27.5, 81: -28, 96: 941.5, 133: 145, 224: 43.5, 255: -31.5} {
			require.Equal(t, v, want[i], "spot value %d", i)
		}
		check(t, DequantQ4_K, b, want)
	})

	t.Run("Q5_K", func(t *testing.T) {
		// d = 0.5 (0x3800), dmin = 1 (0x3C00), Q4_K's scales and nibbles;
		// qh[l] = 0x55 for even l, 0xAA for odd l, so bit s of qh[l] (the
		// fifth bit of value l of sub-block s) is set when s and l have
		// the same parity. Value 32s+l = 0.5·sc[s]·(q + 16·[s≡l]) − m[s].
		b := make([]byte, Q5_KBlockSize)
		kqHalf(b, 0, 0x3800)
		kqHalf(b, 2, 0x3C00)
		copy(b[4:], kScales)
		for l := range 32 {
			b[16+l] = 0x55 << (l % 2)
		}
		for i := range 128 {
			b[48+i] = byte(i%32%16) | byte(15-i%32%16)<<4
		}
		want := make([]float32, 256)
		for s := range 8 {
			for l := range 32 {
				q := kQ4(s, l)
				if s%2 == l%2 {
					q += 16
				}
				want[32*s+l] = 0.5*kSc[s]*q - kM[s]
			}
		}
		// By hand: value 0 (s 0, q 16) = 0.5·1·16 − 0; value 1 (q 1) =
		// 0.5; value 96 (s 3, q 15) = 0.5·63·15 − 7; value 97 (s 3,
		// q 14+16) = 0.5·63·30 − 7; value 255 (s 7, q 0+16) = 0.5·5·16 − 63.
		for i, v := range map[int]float32{0: 8, 1: 0.5, 96: 465.5, 97: 938, 255: -23} {
			require.Equal(t, v, want[i], "spot value %d", i)
		}
		check(t, DequantQ5_K, b, want)
	})

	t.Run("Q6_K", func(t *testing.T) {
		// d = 0.25 (0x3400); scales[16] = 1 −1 2 −2 127 −128 3 0 5 6 7 8
		// −9 10 11 12. Every ql byte is 0x21 (low nibble 1, high 2) and
		// every qh byte 0xE4 (2-bit fields 0,1,2,3 from the bottom), so in
		// each 128-value half the four runs of 32 (g = 0…3) hold
		//	g0: 1|0<<4 = 1, g1: 1|1<<4 = 17, g2: 2|2<<4 = 34, g3: 2|3<<4 = 50,
		// that is q−32 = −31, −15, 2, 18. Two bytes differ: ql[5] = 0xF0
		// makes value 5 = 0|0<<4 − 32 = −32 and value 69 = 15|2<<4 − 32 =
		// 15; qh[7] = 0x1B (fields 3,2,1,0) makes value 7 = 1|3<<4 − 32 =
		// 17, value 39 = 1|2<<4 − 32 = 1, value 71 = 2|1<<4 − 32 = −14 and
		// value 103 = 2|0<<4 − 32 = −30. Value i = 0.25·scales[i/16]·(q−32).
		b := make([]byte, Q6_KBlockSize)
		for i := range 128 {
			b[i] = 0x21
		}
		for i := range 64 {
			b[128+i] = 0xE4
		}
		b[5], b[128+7] = 0xF0, 0x1B
		sc := []int8{1, -1, 2, -2, 127, -128, 3, 0, 5, 6, 7, 8, -9, 10, 11, 12}
		for i, s := range sc {
			b[192+i] = byte(s)
		}
		kqHalf(b, 208, 0x3400)
		q := make([]float32, 256)
		for i := range q {
			q[i] = []float32{-31, -15, 2, 18}[i%128/32]
		}
		q[5], q[69], q[7], q[39], q[71], q[103] = -32, 15, 17, 1, -14, -30
		want := make([]float32, 256)
		for i := range want {
			want[i] = 0.25 * float32(sc[i/16]) * q[i]
		}
		// By hand: 0.25·1·−31; 0.25·1·−32; 0.25·2·1; 0.25·127·15;
		// 0.25·127·−14; 0.25·−128·2; 0.25·3·−30; 0.25·0·18; 0.25·−9·2;
		// 0.25·11·18.
		for i, v := range map[int]float32{0: -7.75, 5: -8, 39: 0.5, 69: 476.25, 71: -444.5, 80: -64, 103: -22.5, 112: 0, 200: -4.5, 224: 49.5} {
			require.Equal(t, v, want[i], "spot value %d", i)
		}
		check(t, DequantQ6_K, b, want)
	})

	t.Run("Q8_K", func(t *testing.T) {
		// d = 0.5 (float32), q[j] = j − 128: value j = 0.5·(j − 128).
		b := make([]byte, Q8_KBlockSize)
		binary.LittleEndian.PutUint32(b, math.Float32bits(0.5))
		want := make([]float32, 256)
		for j := range 256 {
			b[4+j] = byte(int8(j - 128))
			want[j] = 0.5 * float32(j-128)
		}
		require.Equal(t, []float32{-64, 0, 63.5}, []float32{want[0], want[128], want[255]})
		check(t, DequantQ8_K, b, want)
	})
}

// TestKQuantDequantMatchesDecode checks every dequantizer on random blocks
// (every bit pattern of the quants and 6-bit scales) against the
// independent decoding: each value must be the exact value
// d·sc·q − dmin·m rounded once to float32. That holds for ggml's formulas
// because every product in them is exact in float32 except Q6_K's last,
// whose first factor d·sc is exact, and at most one rounding follows.
func TestKQuantDequantMatchesDecode(t *testing.T) {
	t.Parallel()
	r := newRand(1)
	fs := append(kqFormats, &kqFormat{name: "Q8_K", blockLen: 256, wSize: Q8_KBlockSize, dequant: DequantQ8_K,
		decode: func(b []byte) kqRefBlock {
			a := kqDecodeQ8_K(b)
			rb := newKQRefBlock(256, -128, 127)
			rb.d = float64(a.d)
			copy(rb.q, a.q)
			return rb
		}})
	for _, f := range fs {
		for _, nb := range []int{1, 3, 17} {
			blocks := kqRandBlocks(r, nb, f.wSize, f.halves)
			if f.name == "Q8_K" {
				for i := range nb {
					binary.LittleEndian.PutUint32(blocks[i*f.wSize:], math.Float32bits(float32(r.NormFloat64())))
				}
			}
			got := make([]float32, nb*f.blockLen)
			f.dequant(blocks, got)
			for b := range nb {
				ref := f.decode(blocks[b*f.wSize:])
				for i := range f.blockLen {
					require.Equal(t, math.Float32bits(float32(ref.value(i))), math.Float32bits(got[b*f.blockLen+i]),
						"%s block %d value %d: got %v, want %v", f.name, b, i, got[b*f.blockLen+i], ref.value(i))
				}
			}
		}
	}
}

func TestKQuantNearestInt(t *testing.T) {
	t.Parallel()
	// Inside ggml's asserted range nearest_int rounds to nearest, ties to
	// even.
	r := newRand(2)
	vals := []float32{0, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49999997, 4194303, -4194303, 4194302.5, 126.5, -127.5}
	for range 100000 {
		vals = append(vals, float32((r.Float64()*2-1)*math.Exp2(float64(r.IntN(23)))))
	}
	for _, v := range vals {
		require.Equal(t, int32(math.RoundToEven(float64(v))), kqNearestInt(v), "%v", v)
	}
	// Outside it, what the C computes from the float32 sum: ±Inf + c is
	// ±Inf (mantissa 0), a quiet NaN keeps mantissa 0x400000.
	require.Equal(t, int32(-4194304), kqNearestInt(float32(math.Inf(1))))
	require.Equal(t, int32(-4194304), kqNearestInt(float32(math.Inf(-1))))
	require.Equal(t, int32(0), kqNearestInt(math.Float32frombits(0x7fc00000)))
}

func TestKQuantQuantizeQ8_1(t *testing.T) {
	t.Parallel()
	// Known answer: amax 127 gives d = 1, id = 1, so q = roundf(x) (halves
	// away from zero) and s = Σq = 127−127+1−1+2+3−3+127+3 = 132, the half
	// 0x5820 (1.03125·2⁷).
	x := make([]float32, 32)
	copy(x, []float32{127, -127, 0.5, -0.5, 1.5, 2.5, -2.5, 126.5, 3.25})
	dst := make([]byte, Q8_1BlockSize)
	QuantizeQ8_1(x, dst)
	require.Equal(t, uint16(0x3C00), binary.LittleEndian.Uint16(dst[0:]))
	require.Equal(t, uint16(0x5820), binary.LittleEndian.Uint16(dst[2:]))
	want := []int8{127, -127, 1, -1, 2, 3, -3, 127, 3}
	for i := range 32 {
		var q int8
		if i < len(want) {
			q = want[i]
		}
		require.Equal(t, q, int8(dst[4+i]), "quant %d", i)
	}

	// Q8_1's d and quants are Q8_0's (the same statements of the two _ref
	// quantizers), and s is F32ToF16(float32(Σq)·d) with d = amax/127
	// before its rounding to a half, on every kind of row q8_test uses,
	// specials included.
	r := newRand(3)
	const nb = 64
	for kind := range 5 {
		x := make([]float32, nb*32)
		for i := range x {
			x[i] = q8Source(r, kind)
			if r.IntN(200) == 0 {
				x[i] = q8Specials[r.IntN(len(q8Specials))]
			}
		}
		q80 := make([]byte, nb*Q8_0BlockSize)
		q81 := make([]byte, nb*Q8_1BlockSize)
		QuantizeQ8_0(x, q80)
		QuantizeQ8_1(x, q81)
		for b := range nb {
			b0, b1 := q80[b*34:(b+1)*34], q81[b*36:(b+1)*36]
			require.Equal(t, b0[:2], b1[:2], "kind %d block %d: d", kind, b)
			require.Equal(t, b0[2:], b1[4:], "kind %d block %d: quants", kind, b)
			var sum int32
			for _, q := range b1[4:] {
				sum += int32(int8(q))
			}
			var amax float32
			for _, v := range x[b*32 : (b+1)*32] {
				if a := float32(math.Abs(float64(v))); !(amax > a) { // C's MAX(amax, a)
					amax = a
				}
			}
			s := float32(sum) * (amax / 127)
			want := F32ToF16(s)
			if s != s {
				want = uint16(math.Float32bits(s)>>16)&0x8000 | 0x7e00
			}
			require.Equal(t, want, binary.LittleEndian.Uint16(b1[2:]), "kind %d block %d: s", kind, b)
		}
	}
}

func TestKQuantQuantizeQ8_K(t *testing.T) {
	t.Parallel()
	quant := func(x []float32) []byte {
		dst := make([]byte, Q8_KBlockSize)
		for i := range dst {
			dst[i] = 0xEE // stale bytes must all be overwritten
		}
		QuantizeQ8_K(x, dst)
		return dst
	}
	checkBlock := func(t *testing.T, dst []byte, d float32, q map[int]int8, bsums map[int]int16) {
		t.Helper()
		require.Equal(t, math.Float32bits(d), binary.LittleEndian.Uint32(dst), "d")
		for i := range 256 {
			require.Equal(t, q[i], int8(dst[4+i]), "quant %d", i)
		}
		for j := range 16 {
			require.Equal(t, bsums[j], int16(binary.LittleEndian.Uint16(dst[260+2*j:])), "bsum %d", j)
		}
	}
	x := make([]float32, 256)

	// max = −127 (the first value of largest magnitude) gives iscale = 1
	// and d = 1; nearest_int rounds ties to even (0.5 → 0, 1.5 → 2,
	// 2.5 → 2, −0.5 → 0, −1.5 → −2, −2.5 → −2). bsums[0] = −127+127+0+2+2
	// +0−2−2+3+100 = 103.
	copy(x, []float32{-127, 127, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.49, 100.5})
	checkBlock(t, quant(x), 1, map[int]int8{0: -127, 1: 127, 3: 2, 4: 2, 6: -2, 7: -2, 8: 3, 9: 100}, map[int]int16{0: 103})

	// A positive max: iscale = −127/254 = −0.5, so d = −2 and the signs
	// flip: 254 → −127, −254 → 127, 3 → −1.5 → −2, −1 → 0.5 → 0, and
	// x[20] = 101 → −50.5 → −50. bsums[0] = −2, bsums[1] = −50.
	clear(x)
	copy(x, []float32{254, -254, 3, -1})
	x[20] = 101
	checkBlock(t, quant(x), -2, map[int]int8{0: -127, 1: 127, 2: -2, 20: -50}, map[int]int16{0: -2, 1: -50})

	// All zeros: d = 0 and everything 0 (ggml leaves bsums unwritten).
	clear(x)
	checkBlock(t, quant(x), 0, nil, nil)

	// Tiny values: −127/1e-38 overflows to −Inf, so every iscale·x is ±Inf
	// or NaN (−Inf·0), nearest_int gives −2²² or 0, whose low byte is 0,
	// and d = 1/−Inf = −0.
	for i := range x {
		x[i] = 1e-38
	}
	x[1], x[2] = -1e-38, 0
	checkBlock(t, quant(x), float32(math.Copysign(0, -1)), nil, nil)

	// Random rows against the restated reference, bit for bit.
	r := newRand(4)
	const nb = 16
	for _, kind := range []int{0, 1, 2, 4} {
		x := make([]float32, nb*256)
		for i := range x {
			x[i] = q8Source(r, kind)
		}
		got, want := make([]byte, nb*Q8_KBlockSize), make([]byte, nb*Q8_KBlockSize)
		QuantizeQ8_K(x, got)
		refQuantizeQ8_K(x, want)
		require.Equal(t, want, got, "kind %d", kind)
		// Every bsum is its group's sum, and the largest magnitude maps to ±127.
		for b := range nb {
			a := kqDecodeQ8_K(got[b*Q8_KBlockSize:])
			for j := range 16 {
				var s int32
				for _, q := range a.q[16*j : 16*j+16] {
					s += q
				}
				require.Equal(t, s, a.bsums[j])
			}
		}
	}
}

// TestKQuantQuantizeKnown quantizes hand-built blocks with the 32-value
// weight quantizers, and all-zero rows with the K-quant ones.
func TestKQuantQuantizeKnown(t *testing.T) {
	t.Parallel()
	nib := func(lo, hi []uint8) []byte {
		b := make([]byte, 16)
		for j := range b {
			b[j] = lo[j]&0xF | (hi[j]&0xF)<<4
		}
		return b
	}
	seq := func(from int) []uint8 {
		s := make([]uint8, 16)
		for j := range s {
			s[j] = uint8(from + j)
		}
		return s
	}

	t.Run("Q4_0", func(t *testing.T) {
		// x = −8…7, then 7.6 −7.4 0.49 0.5 −0.5 2.51 and zeros. max = −8
		// (first of largest |x|), d = −8/−8 = 1, id = 1, and
		// q = min(15, trunc(x + 8.5)): x+8 for the integers; 16.1 → 16 →
		// clipped to 15; 1.1 → 1; 8.99 → 8; 9.0 → 9; 8.0 → 8; 11.01 → 11;
		// 8.5 → 8.
		x := make([]float32, 32)
		for j := range 16 {
			x[j] = float32(j - 8)
		}
		copy(x[16:], []float32{7.6, -7.4, 0.49, 0.5, -0.5, 2.51})
		got := make([]byte, Q4_0BlockSize)
		QuantizeQ4_0(x, got)
		hi := []uint8{15, 1, 8, 9, 8, 11, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8}
		require.Equal(t, append([]byte{0x00, 0x3C}, nib(seq(0), hi)...), got)
	})

	t.Run("Q4_1", func(t *testing.T) {
		// x = j/4 − 1 (j < 16), then 2.75 1.1 0.125 −0.875 and zeros:
		// min = −1, max = 2.75, d = 3.75/15 = 0.25, id = 4, and
		// q = min(15, trunc((x+1)·4 + 0.5)): j; 15; 8.9 → 8; 5.0 → 5 (the
		// tie goes up); 1.0 → 1; zeros 4.5 → 4. m = −1 (0xBC00).
		x := make([]float32, 32)
		for j := range 16 {
			x[j] = float32(j)/4 - 1
		}
		copy(x[16:], []float32{2.75, 1.1, 0.125, -0.875})
		got := make([]byte, Q4_1BlockSize)
		QuantizeQ4_1(x, got)
		hi := []uint8{15, 8, 5, 1, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4}
		require.Equal(t, append([]byte{0x00, 0x34, 0x00, 0xBC}, nib(seq(0), hi)...), got)
	})

	t.Run("Q5_0", func(t *testing.T) {
		// x = j − 16, then 0…14 and 15.7: max = −16, d = 1, id = 1,
		// q = min(31, trunc(x + 16.5)) = x + 16, and 32.2 → 32 → clipped
		// to 31. Values 16…31 have q ≥ 16: qh = 0xFFFF0000.
		x := make([]float32, 32)
		for j := range 16 {
			x[j] = float32(j - 16)
			x[16+j] = float32(j)
		}
		x[31] = 15.7
		got := make([]byte, Q5_0BlockSize)
		QuantizeQ5_0(x, got)
		want := append([]byte{0x00, 0x3C, 0x00, 0x00, 0xFF, 0xFF}, nib(seq(0), seq(0))...)
		require.Equal(t, want, got)
	})

	t.Run("Q5_1", func(t *testing.T) {
		// x = j/2 except x[5] = 2.25 and x[6] = 2.74: min = 0, max = 15.5,
		// d = 0.5, id = 2, q = trunc(2x + 0.5): j; 5.0 → 5; 5.98 → 5.
		// Values 16…31 have q ≥ 16: qh = 0xFFFF0000; m = 0.
		x := make([]float32, 32)
		for j := range x {
			x[j] = float32(j) / 2
		}
		x[5], x[6] = 2.25, 2.74
		got := make([]byte, Q5_1BlockSize)
		QuantizeQ5_1(x, got)
		lo := seq(0)
		lo[6] = 5
		want := append([]byte{0x00, 0x38, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF}, nib(lo, seq(0))...)
		require.Equal(t, want, got)
	})

	t.Run("zeros", func(t *testing.T) {
		// An all-zero row quantizes to all-zero blocks in every format
		// (d = dmin = 0; Q4_0/Q5_0 store q = 8 and 16, the zero level).
		for _, f := range kqFormats {
			x := make([]float32, 2*f.blockLen)
			got := make([]byte, 2*f.wSize)
			for i := range got {
				got[i] = 0xEE
			}
			f.quantize(x, got)
			deq := make([]float32, len(x))
			f.dequant(got, deq)
			require.Equal(t, x, deq, f.name)
			if f.blockLen == 256 {
				require.Equal(t, make([]byte, len(got)), got, f.name)
			}
		}
	})
}

// TestKQuantRoundTrip quantizes rows with the weight quantizers and checks
// the dequantized values. Each value must lie within half a step of x,
// where the step is its sub-block's |d·sc| as stored, unless x lies
// outside the range the stored scale and min can represent (then within
// its distance to that range): the reference quantizers pick the nearest
// level, the K-quants against the stored scales and the 32-value formats
// against the unrounded d and min, whose rounding to a half moves a level
// q by at most |q|·2⁻¹¹ steps (allowed: |q|·2⁻⁹) and the min by 2⁻¹¹ of
// itself (allowed: 2⁻¹⁰). The RMS error over a Gaussian row must also stay
// below the format's bound, about a step/√12 with the step the block's
// range over its levels.
func TestKQuantRoundTrip(t *testing.T) {
	t.Parallel()
	r := newRand(5)
	for _, f := range kqFormats {
		for _, scale := range []float64{1, 1e-3, 40} {
			for _, kind := range []string{"gauss", "outliers", "uniform", "shifted"} {
				nb := 4
				x := kqGaussRow(r, nb*f.blockLen, scale)
				for i := range x {
					switch kind {
					case "outliers":
						if r.IntN(40) == 0 {
							x[i] *= 20
						}
					case "uniform":
						x[i] = float32((r.Float64()*2 - 1) * scale)
					case "shifted":
						x[i] += float32(3 * scale)
					}
				}
				q := make([]byte, nb*f.wSize)
				f.quantize(x, q)
				deq := make([]float32, len(x))
				f.dequant(q, deq)
				var se, sx float64
				for b := range nb {
					ref := f.decode(q[b*f.wSize:])
					for i := range f.blockLen {
						k := b*f.blockLen + i
						step := math.Abs(ref.d * float64(ref.sc[i]))
						off := ref.dmin * float64(ref.mn[i])
						lo := ref.d*float64(ref.sc[i])*float64(ref.qlo) - off
						hi := ref.d*float64(ref.sc[i])*float64(ref.qhi) - off
						lo, hi = min(lo, hi), max(lo, hi)
						xv := float64(x[k])
						excess := max(0, lo-xv, xv-hi)
						qmax := float64(max(-ref.qlo, ref.qhi))
						bound := step*(0.5+qmax*0x1p-9) + math.Abs(off)*0x1p-10 + excess + 1e-6*scale*0x1p-10
						e := math.Abs(float64(deq[k]) - xv)
						require.LessOrEqual(t, e, bound, "%s scale %g %s: value %d = %v → %v (step %g, range [%g, %g])",
							f.name, scale, kind, k, x[k], deq[k], step, lo, hi)
						se += e * e
						sx += xv * xv
					}
				}
				if kind == "gauss" {
					rel := math.Sqrt(se / sx)
					require.Less(t, rel, f.rms, "%s scale %g: relative RMS error", f.name, scale)
				}
			}
		}
	}
}

// TestKQuantIntegerParts checks the integer part of every block product,
// on random weight and activation bytes (every quant, scale and bsum bit
// pattern, the int8 −128 included) and on the extreme all-ones and
// all-0x80 blocks, against the independent plain sums.
func TestKQuantIntegerParts(t *testing.T) {
	t.Parallel()
	r := newRand(6)
	for _, f := range kqFormats {
		const nb = 500
		w := kqRandBlocks(r, nb, f.wSize, nil)
		x := kqRandBlocks(r, nb, f.xSize, nil)
		w = append(w, fill(f.wSize, 0xFF)...)
		x = append(x, fill(f.xSize, 0x80)...)
		w = append(w, fill(f.wSize, 0x80)...)
		x = append(x, fill(f.xSize, 0xFF)...)
		for b := range nb + 2 {
			wb, xb := w[b*f.wSize:(b+1)*f.wSize], x[b*f.xSize:(b+1)*f.xSize]
			gotLanes, gotSumm := f.ints(wb, xb)
			rw, rx := f.decode(wb), f.actDecode(xb)
			var wantLanes [8]int32
			var wantSumm int32
			if f.blockLen == 32 {
				wantLanes[0] = kqRefSum(&rw, &rx)
			} else {
				wantLanes, wantSumm = kqRefLanes(&rw, &rx)
			}
			require.Equal(t, wantLanes, gotLanes, "%s block %d lanes", f.name, b)
			require.Equal(t, wantSumm, gotSumm, "%s block %d min term", f.name, b)
		}
	}
}

func fill(n int, v byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = v
	}
	return b
}

// TestKQuantDot checks every dot product, on weights from the reference
// quantizers and on random blocks, with activations from the paired
// quantizer:
//   - bit for bit against ggml's float order restated over the
//     independent decoding (kqRefDot), which pins the integer parts and the
//     order of the float32 operations;
//   - the generic twin gives the same bits (the contract any assembly
//     twin will have to meet, or to relax to the bound below);
//   - within γ(2n+16)·Σ|terms| of the float64 dot of the dequantized rows,
//     n the block count: each term is rounded at most three times before
//     it is summed, and a term passes through at most 2n+8 sums (its lane
//     over the blocks, then the total); Σ|terms| is bounded by
//     Σ (|d·sc·q| + |dmin·m|)·|x|. For Q8_1 activations the min meets
//     the half-rounded s = d·Σq, so |m|·|s − d·Σq| is allowed on top.
func TestKQuantDot(t *testing.T) {
	t.Parallel()
	r := newRand(7)
	for _, f := range kqFormats {
		nbs := []int{0, 1, 2, 3, 7, 28}
		if f.blockLen == 32 {
			nbs = []int{0, 1, 2, 3, 5, 64, 224}
		}
		for trial := range 40 {
			nb := nbs[trial%len(nbs)]
			for _, src := range []string{"quantized", "random", "correlated"} {
				var w, x []byte
				switch src {
				case "quantized":
					w = make([]byte, nb*f.wSize)
					f.quantize(kqGaussRow(r, nb*f.blockLen, 0.05), w)
					x = kqActRow(r, f, nb)
				case "random":
					w = kqRandBlocks(r, nb, f.wSize, f.halves)
					x = kqActRow(r, f, nb)
				case "correlated":
					// Weights and activations from the same row: the
					// integer sums grow to 15–24 bits, where the order of
					// the float32 products starts to matter.
					g := kqGaussRow(r, nb*f.blockLen, 1)
					w = make([]byte, nb*f.wSize)
					f.quantize(g, w)
					x = make([]byte, nb*f.xSize)
					f.actQuantize(g, x)
				}
				got := f.dot(w, x, nb)
				want := kqRefDot(f, w, x, nb)
				require.Equal(t, math.Float32bits(want), math.Float32bits(got), "%s %s nb %d: got %v, ggml order %v", f.name, src, nb, got, want)
				require.Equal(t, math.Float32bits(got), math.Float32bits(f.generic(w, x, nb)), "%s generic", f.name)

				dot, absSum, q81 := kqRefDot64(f, w, x, nb)
				k := float64(2*nb+16) * 0x1p-24
				tol := k/(1-k)*absSum + q81 + float64(4*nb+16)*0x1p-149
				require.InDelta(t, dot, float64(got), tol, "%s %s nb %d", f.name, src, nb)
				if nb == 0 {
					require.Equal(t, float32(0), got)
				}
			}
		}
		// Single correlated blocks, where a product rounded in another
		// order changes the result's last bit in about 1% of blocks
		// (a long row's sum would absorb most such differences).
		for range 2000 {
			g := kqGaussRow(r, f.blockLen, 1)
			w, x := make([]byte, f.wSize), make([]byte, f.xSize)
			f.quantize(g, w)
			f.actQuantize(g, x)
			require.Equal(t, math.Float32bits(kqRefDot(f, w, x, 1)), math.Float32bits(f.dot(w, x, 1)), "%s single block", f.name)
		}
	}
}

// TestKQuantOffsets runs the kernels on blocks at odd offsets inside
// larger buffers, with guard bytes around them, and dequantizes into
// guarded outputs: results must match the tightly allocated case bit for
// bit, and nothing outside the outputs may change.
func TestKQuantOffsets(t *testing.T) {
	t.Parallel()
	r := newRand(8)
	for _, f := range kqFormats {
		nb := 3
		w := kqRandBlocks(r, nb, f.wSize, f.halves)
		x := kqActRow(r, f, nb)
		want := f.dot(w, x, nb)
		wantDeq := make([]float32, nb*f.blockLen)
		f.dequant(w, wantDeq)
		for _, off := range []int{1, 3, 7, 33} {
			wg, _ := guarded(len(w), off, byte(0xA5))
			xg, _ := guarded(len(x), off+2, byte(0x5A))
			copy(wg, w)
			copy(xg, x)
			// Slices that run on past the blocks into the guards.
			require.Equal(t, math.Float32bits(want), math.Float32bits(f.dot(wg[:len(wg)+8], xg[:len(xg)+5], nb)), "%s off %d", f.name, off)
			require.Equal(t, math.Float32bits(want), math.Float32bits(f.dot(wg, xg, nb)), "%s off %d", f.name, off)

			deq, check := guarded(nb*f.blockLen, off, float32(-12345.5))
			f.dequant(wg[:len(wg)+3], deq)
			check(t)
			require.Equal(t, wantDeq, deq, "%s off %d", f.name, off)
		}
		// One block out of the middle of the row.
		require.Equal(t, math.Float32bits(kqRefDot(f, w[f.wSize:], x[f.xSize:], 1)),
			math.Float32bits(f.dot(w[f.wSize:], x[f.xSize:], 1)), f.name)
	}
	// The activation quantizers write only their blocks.
	for _, c := range []struct {
		name   string
		q      func([]float32, []byte)
		n, len int
	}{{"Q8_1", QuantizeQ8_1, 64, 2 * Q8_1BlockSize}, {"Q8_K", QuantizeQ8_K, 512, 2 * Q8_KBlockSize}} {
		x := kqGaussRow(r, c.n, 1)
		want := make([]byte, c.len)
		c.q(x, want)
		dst, check := guarded(c.len, 5, byte(0xC3))
		c.q(x, dst[:len(dst)+9])
		check(t)
		require.Equal(t, want, dst, c.name)
	}
}

// TestKQuantPanics checks that a row that is not whole blocks, a short
// buffer and a negative block count panic with a message naming the
// function and the lengths.
func TestKQuantPanics(t *testing.T) {
	t.Parallel()
	type dq = func([]byte, []float32)
	type qz = func([]float32, []byte)
	for _, f := range kqFormats {
		n := f.blockLen
		deqName := "Dequant" + f.name
		require.PanicsWithValue(t, fmt.Sprintf("kernel: %s: len(dst) = %d is not a multiple of %d", deqName, n+1, n),
			func() { f.dequant(make([]byte, 4*f.wSize), make([]float32, n+1)) })
		require.PanicsWithValue(t, fmt.Sprintf("kernel: %s: len(dst) = %d needs %d bytes of blocks, have %d", deqName, 2*n, 2*f.wSize, 2*f.wSize-1),
			func() { f.dequant(make([]byte, 2*f.wSize-1), make([]float32, 2*n)) })

		qName := "Quantize" + f.name
		require.PanicsWithValue(t, fmt.Sprintf("kernel: %s: len(x) = %d is not a multiple of %d", qName, n-1, n),
			func() { f.quantize(make([]float32, n-1), make([]byte, 4*f.wSize)) })
		require.PanicsWithValue(t, fmt.Sprintf("kernel: %s: len(x) = %d needs %d bytes of dst, have %d", qName, 3*n, 3*f.wSize, f.wSize),
			func() { f.quantize(make([]float32, 3*n), make([]byte, f.wSize)) })

		dotName := "Dot" + f.name
		require.PanicsWithValue(t, fmt.Sprintf("kernel: %s: nBlocks = 2 needs %d bytes of w and %d of x, have %d and %d",
			dotName, 2*f.wSize, 2*f.xSize, 2*f.wSize-1, 2*f.xSize),
			func() { f.dot(make([]byte, 2*f.wSize-1), make([]byte, 2*f.xSize), 2) })
		require.PanicsWithValue(t, fmt.Sprintf("kernel: %s: nBlocks = 2 needs %d bytes of w and %d of x, have %d and %d",
			dotName, 2*f.wSize, 2*f.xSize, 2*f.wSize, f.xSize),
			func() { f.dot(make([]byte, 2*f.wSize), make([]byte, f.xSize), 2) })
		require.PanicsWithValue(t, fmt.Sprintf("kernel: %s: nBlocks = -1 is negative", dotName),
			func() { f.dot(nil, nil, -1) })
	}
	for _, c := range []struct {
		name       string
		fn         any
		n, blkSize int
	}{{"QuantizeQ8_1", qz(QuantizeQ8_1), 32, 36}, {"QuantizeQ8_K", qz(QuantizeQ8_K), 256, 292}, {"DequantQ8_K", dq(DequantQ8_K), 256, 292}} {
		var call func(n, bytes int)
		row := "x"
		buf := "dst"
		switch fn := c.fn.(type) {
		case qz:
			call = func(n, bytes int) { fn(make([]float32, n), make([]byte, bytes)) }
		case dq:
			call = func(n, bytes int) { fn(make([]byte, bytes), make([]float32, n)) }
			row, buf = "dst", "blocks"
		}
		require.PanicsWithValue(t, fmt.Sprintf("kernel: %s: len(%s) = %d is not a multiple of %d", c.name, row, c.n+4, c.n),
			func() { call(c.n+4, 10*c.blkSize) })
		require.PanicsWithValue(t, fmt.Sprintf("kernel: %s: len(%s) = %d needs %d bytes of %s, have %d", c.name, row, 2*c.n, 2*c.blkSize, buf, 2*c.blkSize-1),
			func() { call(2*c.n, 2*c.blkSize-1) })
	}
}

// kqGoldenRows returns the 48 rows of 1024 values behind the golden
// digests of TestKQuantGolden, from PCG bits and exact arithmetic only (no
// NormFloat64 or transcendental functions, whose bits could change between
// Go releases or machines). Row r is of kind r%8: 0–2 near-Gaussian
// (a sum of four uniforms, centred) times 1, 1e-3 and 50; 3 with one value
// in 40 twenty times larger; 4 uniform in [−1, 1); 5 shifted by +3; 6
// groups of 16 that are zero, constant, a single −2.5, 1e-20-tiny, small
// integers or near-Gaussian; 7 halves k/2 for k in [−20, 20] (ties).
func kqGoldenRows() [][]float32 {
	r := rand.New(rand.NewPCG(0x6b71, 0x676f6c64)) // "kq", "gold"
	unif := func() float64 { return float64(r.Uint64()>>11) / (1 << 53) }
	gauss := func() float64 { return unif() + unif() + unif() + unif() - 2 }
	rows := make([][]float32, 48)
	for ri := range rows {
		x := make([]float32, 1024)
		for i := range x {
			g := gauss()
			var v float64
			switch ri % 8 {
			case 0:
				v = g
			case 1:
				v = g * 1e-3
			case 2:
				v = g * 50
			case 3:
				v = g
				if r.Uint64()%40 == 0 {
					v *= 20
				}
			case 4:
				v = unif()*2 - 1
			case 5:
				v = g + 3
			case 6:
				switch i / 16 % 6 {
				case 0:
					v = 0
				case 1:
					v = 0.75
				case 2:
					if i%16 == 3 {
						v = -2.5
					}
				case 3:
					v = -g * 1e-20
				case 4:
					v = float64(i % 7)
				default:
					v = g
				}
			default:
				v = float64(int(r.Uint64()%41)-20) / 2
			}
			x[i] = float32(v)
		}
		rows[ri] = x
	}
	return rows
}

// TestKQuantGolden holds the quantizers, dequantizers and dot products to
// digests of ggml's own output. The digests are SHA-256 of what ggml's C
// functions (the _ref quantizers, dequantize_row_* and the generic
// ggml_vec_dot_*, at the llama.cpp commits kquant.go cites, compiled by gcc
// 12 -O2 -ffp-contract=off on amd64) wrote for kqGoldenRows: per weight
// format the quantized rows, their dequantized values (little-endian
// float32) and the 48 dot products of row r's weights with row r+1 (mod 48)
// quantized by the paired activation quantizer; and the Q8_1 and Q8_K
// quantizations of rows 1…47, 0. A quantizer that differs from ggml's by a
// single rounding changes a digest.
func TestKQuantGolden(t *testing.T) {
	t.Parallel()
	golden := map[string]string{
		"Q4_0_w": "64c2665588c5ff374aecd78a99d3a787f7571fd6ca10017e38edac677bc57ae2",
		"Q4_1_w": "dead67df7478d197a5e6e73505b04aa271c9a81b901db494cc1ae5f3b64ed9e1",
		"Q5_0_w": "086562f956c9786de43f3733e3f3dd76a7eb057d99e44f4fba46a7f08e589f5a",
		"Q5_1_w": "05939ec3c248ab3542ba93a8ab31c3ec64a422d407b8fc273fd91eacc22ef37a",
		"Q4_K_w": "63c9882cbf49e97eda1f343682f4fc3edc4bf67d06e35cdb8d397cd7dce324ed",
		"Q5_K_w": "12731f20058cd707c11a68bbaaf880a49dd2d862fc0b9f2b571c33c0600afbe6",
		"Q6_K_w": "b3cffbd5d0b267ec2fc95af5a1133bdd7f145c992c1c4f1c4b96bb3ea4c930a6",

		"Q4_0_deq": "119d0510b9736a3020780bc141f79ae8c971ef46759ccbcf767b1586e74b9446",
		"Q4_1_deq": "3a4dda155381f90a6218cf2beb70d8b92fa9db21f827b80dc3b82da4d70d04fd",
		"Q5_0_deq": "859eff9ef38d4c27d6daa0ca06d1d91ca941b01383f07cb551410374352a85e6",
		"Q5_1_deq": "039ffae7ce6635fe384de8e1802f15f0cbef7f537405947ccc24763d94f92a4d",
		"Q4_K_deq": "8f33eb53ccba0a62323efeecfca46a2d4d89c25fd596dbe45dc25067327f5d7d",
		"Q5_K_deq": "25a1b2df275c22c4c442e4190890afab9b2eddac801c961625c1a234edf40935",
		"Q6_K_deq": "bd51de47afe0fe4096617e46327083361622aa19d4b5ef63d63011d01ece12c9",

		"Q4_0_dot": "67936c9fc0eee7b8a7b693b363d3093b7758cf99e0a58e2df804ab7e53607e1e",
		"Q4_1_dot": "31219045192dafe3414607ea61a2a57e9fc222762734cb2bc9022c9c5e67c10c",
		"Q5_0_dot": "1911755d5a0f8242243d010316d77f9d0c30c8df41b966c56d718ccd4086078b",
		"Q5_1_dot": "599f6441239e7b45fae3017bb7112034be34a4e0d0c2a46290eb7d4734f0e79d",
		"Q4_K_dot": "cb9ef52e2e7a3f5f532c74a01b0d8f1caa8d0cd2c9728301d7160f686a2cb4d5",
		"Q5_K_dot": "7a7a3b074a2063c7ad27b839e7b55dd6676b983b4fe8fb1feed773aa5206efb0",
		"Q6_K_dot": "205506726a174eff1b2bbd765d30f93520ccd41cf9e2b2f340c877270f459e48",

		"Q8_1": "1b9651c5a9b776b7309f22e27672a186fb5d4b4d468d8fc4bc614dc2f7462db1",
		"Q8_K": "c06d2b62ae5214de1c3204ea5e3f6383cf5e09a25cce9c356514a705a096c9cc",
	}
	rows := kqGoldenRows()
	nr, n := len(rows), len(rows[0])
	hashes := map[string]hash.Hash{}
	h := func(name string) hash.Hash {
		if hashes[name] == nil {
			hashes[name] = sha256.New()
		}
		return hashes[name]
	}
	floatBytes := func(fs []float32) []byte {
		var b []byte
		for _, f := range fs {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(f))
		}
		return b
	}
	for ri, x := range rows {
		xa := rows[(ri+1)%nr]
		acts := map[string][]byte{
			"Q8_0": make([]byte, n/32*Q8_0BlockSize),
			"Q8_1": make([]byte, n/32*Q8_1BlockSize),
			"Q8_K": make([]byte, n/256*Q8_KBlockSize),
		}
		QuantizeQ8_0(xa, acts["Q8_0"])
		QuantizeQ8_1(xa, acts["Q8_1"])
		QuantizeQ8_K(xa, acts["Q8_K"])
		h("Q8_1").Write(acts["Q8_1"])
		h("Q8_K").Write(acts["Q8_K"])
		for _, f := range kqFormats {
			w := make([]byte, n/f.blockLen*f.wSize)
			f.quantize(x, w)
			h(f.name + "_w").Write(w)
			deq := make([]float32, n)
			f.dequant(w, deq)
			h(f.name + "_deq").Write(floatBytes(deq))
			h(f.name + "_dot").Write(floatBytes([]float32{f.dot(w, acts[f.xName], n/f.blockLen)}))
		}
	}
	require.Len(t, hashes, len(golden))
	for name, want := range golden {
		require.Equal(t, want, hex.EncodeToString(hashes[name].Sum(nil)), name)
	}
}

// TestKQuantDotx4: the four-row dots give each row exactly the one-row
// dot's bits, whatever the stride between the rows, on every
// implementation set.
func TestKQuantDotx4(t *testing.T) {
	t.Parallel()
	sets := append([]impls{active}, asmFallbacks()...)
	sets = append(sets, generic)
	for _, c := range []struct {
		name string
		x4   func(w, x []byte, xStride, nBlocks int, out *[4]float32)
		of   func(kquantImpls) func(w, x []byte, xStride, nBlocks int, out *[4]float32)
	}{
		{"Q4_K", DotQ4_Kx4, func(k kquantImpls) func(w, x []byte, xStride, nBlocks int, out *[4]float32) { return k.dotQ4_Kx4 }},
		{"Q5_K", DotQ5_Kx4, func(k kquantImpls) func(w, x []byte, xStride, nBlocks int, out *[4]float32) { return k.dotQ5_Kx4 }},
		{"Q6_K", DotQ6_Kx4, func(k kquantImpls) func(w, x []byte, xStride, nBlocks int, out *[4]float32) { return k.dotQ6_Kx4 }},
	} {
		var f *kqFormat
		for _, k := range kqFormats {
			if k.name == c.name {
				f = k
			}
		}
		r := newRand(11)
		for trial := range 60 {
			nb := []int{0, 1, 2, 3, 7, 28}[trial%6]
			stride := nb*f.xSize + []int{0, 4, 292}[trial%3]
			w := kqRandBlocks(r, nb, f.wSize, f.halves)
			if trial%2 == 0 {
				w = make([]byte, nb*f.wSize)
				f.quantize(kqGaussRow(r, nb*f.blockLen, 1), w)
			}
			x := make([]byte, 3*stride+nb*f.xSize)
			for row := range 4 {
				copy(x[row*stride:], kqActRow(r, f, nb))
			}
			var want [4]float32
			for row := range want {
				want[row] = f.generic(w, x[row*stride:], nb)
			}
			// Each set's kernel directly: swapping the active set would
			// race with the tests that run beside this one.
			for _, set := range sets {
				var got [4]float32
				x4 := c.of(set.kq)
				if set.name == active.name {
					x4 = c.x4 // through the exported function's checks
				}
				x4(w, x[:3*stride+nb*f.xSize], stride, nb, &got)
				for row := range got {
					require.Equal(t, math.Float32bits(want[row]), math.Float32bits(got[row]), "%s %s nb %d stride %d row %d", c.name, set.name, nb, stride, row)
				}
			}
		}
		require.Panics(t, func() { c.x4(make([]byte, f.wSize), make([]byte, 3*f.xSize), f.xSize-1, 1, new([4]float32)) }, "rows overlap")
		require.Panics(t, func() { c.x4(make([]byte, f.wSize), make([]byte, 4*f.xSize-1), f.xSize, 1, new([4]float32)) }, "x too short")
	}
}
