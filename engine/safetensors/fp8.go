package safetensors

import "math"

// e4m3 holds the value of every F8_E4M3 code.
var e4m3 = func() (t [256]float32) {
	for i := range 256 {
		exp, mant := i>>3&0xF, i&7
		var v float64
		switch {
		case exp == 0xF && mant == 7:
			v = math.NaN()
		case exp == 0: // subnormal: mant/8 · 2⁻⁶
			v = math.Ldexp(float64(mant), -9)
		default: // (1 + mant/8) · 2^(exp−7)
			v = math.Ldexp(float64(8+mant), exp-10)
		}
		t[i] = float32(v)
		if i&0x80 != 0 {
			t[i] = -t[i]
		}
	}
	return t
}()

// E4M3ToFloat32 decodes an F8_E4M3 code (OCP E4M3, PyTorch's
// float8_e4m3fn: sign, 4 exponent bits of bias 7, 3 mantissa bits,
// subnormals, no infinities, NaN for 0x7F and 0xFF) exactly: the largest
// finite value is 448, the smallest subnormal 2⁻⁹.
func E4M3ToFloat32(b byte) float32 { return e4m3[b] }
