package kernel

// DotF32 returns the dot product Σ a[i]·b[i] over i < len(a), accumulated in
// float32. It panics if b is shorter than a.
func DotF32(a, b []float32) float32 {
	return active.dotF32(a, b[:len(a)])
}

// DotF16 returns Σ F16ToF32(w[i])·x[i] over i < len(w): a row of half
// weights against float32 activations, accumulated in float32. It panics if
// x is shorter than w.
func DotF16(w []uint16, x []float32) float32 {
	return active.dotF16(w, x[:len(w)])
}

// DotBF16 returns Σ BF16ToF32(w[i])·x[i] over i < len(w), accumulated in
// float32. It panics if x is shorter than w.
func DotBF16(w []uint16, x []float32) float32 {
	return active.dotBF16(w, x[:len(w)])
}

// DotF32x4 sets out[j] = DotF32(w, xj) for the four activation vectors
// x0…x3, reading w once. Batched decode and prefill use it to stream each
// weight row from memory once per four tokens. The results are bit for bit
// those of DotF32, so batching does not change them. It panics if any xj
// is shorter than w.
func DotF32x4(w, x0, x1, x2, x3 []float32, out *[4]float32) {
	n := len(w)
	active.dotF32x4(w, x0[:n], x1[:n], x2[:n], x3[:n], out)
}

// DotF16x4 sets out[j] = DotF16(w, xj) for j < 4, bit for bit, reading w
// once. It panics if any xj is shorter than w.
func DotF16x4(w []uint16, x0, x1, x2, x3 []float32, out *[4]float32) {
	n := len(w)
	active.dotF16x4(w, x0[:n], x1[:n], x2[:n], x3[:n], out)
}

// DotBF16x4 sets out[j] = DotBF16(w, xj) for j < 4, bit for bit, reading w
// once. It panics if any xj is shorter than w.
func DotBF16x4(w []uint16, x0, x1, x2, x3 []float32, out *[4]float32) {
	n := len(w)
	active.dotBF16x4(w, x0[:n], x1[:n], x2[:n], x3[:n], out)
}

// dotF32Generic is the reference loop of [DotF32]:
//
//	var s float32
//	for i := range a {
//		s += a[i] * b[i]
//	}
//	return s
func dotF32Generic(a, b []float32) float32 {
	b = b[:len(a)]
	var s float32
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// dotF16Generic is the reference loop of [DotF16]:
//
//	var s float32
//	for i := range w {
//		s += F16ToF32(w[i]) * x[i]
//	}
//	return s
func dotF16Generic(w []uint16, x []float32) float32 {
	x = x[:len(w)]
	var s float32
	for i := range w {
		s += F16ToF32(w[i]) * x[i]
	}
	return s
}

// dotBF16Generic is the reference loop of [DotBF16]:
//
//	var s float32
//	for i := range w {
//		s += BF16ToF32(w[i]) * x[i]
//	}
//	return s
func dotBF16Generic(w []uint16, x []float32) float32 {
	x = x[:len(w)]
	var s float32
	for i := range w {
		s += BF16ToF32(w[i]) * x[i]
	}
	return s
}

// dotF32x4Generic is the reference loop of [DotF32x4]:
//
//	var s0, s1, s2, s3 float32
//	for i, wi := range w {
//		s0 += wi * x0[i]
//		s1 += wi * x1[i]
//		s2 += wi * x2[i]
//		s3 += wi * x3[i]
//	}
//	*out = [4]float32{s0, s1, s2, s3}
func dotF32x4Generic(w, x0, x1, x2, x3 []float32, out *[4]float32) {
	n := len(w)
	x0, x1, x2, x3 = x0[:n], x1[:n], x2[:n], x3[:n]
	var s0, s1, s2, s3 float32
	for i, wi := range w {
		s0 += wi * x0[i]
		s1 += wi * x1[i]
		s2 += wi * x2[i]
		s3 += wi * x3[i]
	}
	*out = [4]float32{s0, s1, s2, s3}
}

// dotF16x4Generic is the reference loop of [DotF16x4]: that of
// [dotF32x4Generic] with wi = F16ToF32(w[i]).
func dotF16x4Generic(w []uint16, x0, x1, x2, x3 []float32, out *[4]float32) {
	n := len(w)
	x0, x1, x2, x3 = x0[:n], x1[:n], x2[:n], x3[:n]
	var s0, s1, s2, s3 float32
	for i, h := range w {
		wi := F16ToF32(h)
		s0 += wi * x0[i]
		s1 += wi * x1[i]
		s2 += wi * x2[i]
		s3 += wi * x3[i]
	}
	*out = [4]float32{s0, s1, s2, s3}
}

// dotBF16x4Generic is the reference loop of [DotBF16x4]: that of
// [dotF32x4Generic] with wi = BF16ToF32(w[i]).
func dotBF16x4Generic(w []uint16, x0, x1, x2, x3 []float32, out *[4]float32) {
	n := len(w)
	x0, x1, x2, x3 = x0[:n], x1[:n], x2[:n], x3[:n]
	var s0, s1, s2, s3 float32
	for i, h := range w {
		wi := BF16ToF32(h)
		s0 += wi * x0[i]
		s1 += wi * x1[i]
		s2 += wi * x2[i]
		s3 += wi * x3[i]
	}
	*out = [4]float32{s0, s1, s2, s3}
}

// AxpyF32 adds a·x to y element by element (BLAS's saxpy): attention's
// weighted sum of values. The assembly fuses each multiply-add, so results
// may differ from the generic twin's in the last bit. It panics if y is
// shorter than x.
func AxpyF32(a float32, x, y []float32) {
	y = y[:len(x)]
	active.axpyF32(a, x, y)
}

// axpyF32Generic is the reference loop of [AxpyF32]:
//
//	for i, v := range x {
//		y[i] += a * v
//	}
func axpyF32Generic(a float32, x, y []float32) {
	y = y[:len(x)]
	for i, v := range x {
		y[i] += a * v
	}
}
