package kernel

import (
	"encoding/binary"
	"strconv"
)

// This file holds Q8_0 weights repacked sixteen rows at a time (R16), the
// form in which the AVX-512 VNNI set multiplies them. In the stored Q8_0
// layout a row's blocks lie one after another, and a SIMD tile keeps
// partial sums in lanes of one row: eight float lanes per row and vector,
// each converted, scaled and added on its own, which made the eight-input
// VNNI tile spend five instructions on float bookkeeping for every one
// that multiplied (about 8 products per instruction). Interleaving sixteen
// rows puts one row in each of a ZMM register's sixteen int32 lanes: a
// VPDPBUSD by four broadcast activation bytes adds four products to every
// row at once, eight of them finish a block's exact integer sum for all
// sixteen rows, and the float work (convert, scale, add) is paid once per
// block and vector for sixteen rows instead of once per row (about 40
// products per instruction).
//
// The R16 layout of rows 16g … 16g+15 (a group), block b:
//
//	bytes 0…31     the sixteen rows' f16 scales, row order
//	bytes 32…543   for k = 0…7, 64 bytes: quants 4k…4k+3 of each row in
//	               row order, each with its sign bit flipped (q+128 as an
//	               unsigned byte)
//
// and groups lie one after another, blocks in order within a group: a
// group of nBlocks blocks is nBlocks·544 bytes, the size of its sixteen
// stored rows. Unsigned weights against signed activations is what
// VPDPBUSD multiplies; Σ(q+128)·x = Σq·x + 128·Σx, so each vector's block
// sum starts from −128·Σx, which packing computes (Q8_0R16In).
//
// The products are those of ggml's generic ggml_vec_dot_q8_0_q8_0, in its
// order: per block an exact int32 sum, times the product of the two
// scales, added to one float32 sum per output in block order, no step
// fused (mulQ8_0R16Generic). Every implementation gives those bits.

// R16Rows is the number of rows the R16 layout interleaves.
const R16Rows = 16

// r16Block is the size of one block of a group of R16Rows rows.
const r16Block = R16Rows * Q8_0BlockSize

// RepackQ8_0R16 writes rows Q8_0 rows of nBlocks blocks each, stored one
// after another in src, into dst in the R16 layout. It panics if rows is
// negative or not a multiple of R16Rows, or src or dst is shorter than
// rows·nBlocks·34 bytes.
func RepackQ8_0R16(dst, src []byte, rows, nBlocks int) {
	n := rows * nBlocks * Q8_0BlockSize
	if rows < 0 || rows%R16Rows != 0 || nBlocks < 0 || len(src) < n || len(dst) < n {
		panic("kernel: RepackQ8_0R16: rows = " + strconv.Itoa(rows) + " (a multiple of 16), nBlocks = " +
			strconv.Itoa(nBlocks) + " need " + strconv.Itoa(n) + " bytes, have " + strconv.Itoa(len(src)) +
			" and " + strconv.Itoa(len(dst)))
	}
	rb := nBlocks * Q8_0BlockSize
	for g := range rows / R16Rows {
		for b := range nBlocks {
			out := (*[r16Block]byte)(dst[(g*nBlocks+b)*r16Block:])
			for r := range R16Rows {
				blk := (*[Q8_0BlockSize]byte)(src[(g*R16Rows+r)*rb+b*Q8_0BlockSize:])
				out[2*r], out[2*r+1] = blk[0], blk[1]
				for k := range 8 {
					for i := range 4 {
						out[32+64*k+4*r+i] = blk[2+4*k+i] ^ 0x80
					}
				}
			}
		}
	}
}

// DequantQ8_0R16Row writes row row of a matrix in the R16 layout (rows of
// nBlocks blocks) as float32 into dst[:nBlocks·32]: scale times quant, as
// a stored Q8_0 row dequantizes. It panics if the row is outside w or dst
// is too short.
func DequantQ8_0R16Row(w []byte, row, nBlocks int, dst []float32) {
	g, r := row/R16Rows, row%R16Rows
	if row < 0 || nBlocks < 0 || len(w) < (g+1)*nBlocks*r16Block || len(dst) < nBlocks*Q8_0BlockLen {
		panic("kernel: DequantQ8_0R16Row: row " + strconv.Itoa(row) + " of " + strconv.Itoa(nBlocks) +
			" blocks outside " + strconv.Itoa(len(w)) + " bytes, or dst of " + strconv.Itoa(len(dst)) + " too short")
	}
	for b := range nBlocks {
		blk := (*[r16Block]byte)(w[(g*nBlocks+b)*r16Block:])
		d := F16ToF32(uint16(blk[2*r]) | uint16(blk[2*r+1])<<8)
		for k := range 8 {
			for i := range 4 {
				dst[b*Q8_0BlockLen+4*k+i] = d * float32(int8(blk[32+64*k+4*r+i]^0x80))
			}
		}
	}
}

// R16MaxVectors is the most activation vectors one Q8_0R16In holds.
const R16MaxVectors = 8

// Q8_0R16In holds one to eight Q8_0 activation vectors packed for
// [MulQ8_0R16]: per block and vector, the 32 quants as they are (signed),
// the scale as float32 and −128·Σquants, the start of the block's integer
// sum against unsigned R16 weights. The zero value is empty; Pack reuses
// its storage.
type Q8_0R16In struct {
	nBlocks, n int
	q          []byte    // q[(b·n+j)·32+i]: quant i of block b of vector j
	d          []float32 // d[b·n+j]: scale of block b of vector j
	c          []int32   // c[b·n+j]: −128·Σ of those quants
}

// Len is the number of vectors packed.
func (p *Q8_0R16In) Len() int { return p.n }

// Pack sets p to the vectors xs (1 to R16MaxVectors of them) of nBlocks
// Q8_0 blocks each. It panics on another count or a vector shorter than
// nBlocks·34 bytes.
func (p *Q8_0R16In) Pack(xs [][]byte, nBlocks int) {
	n := len(xs)
	if n < 1 || n > R16MaxVectors || nBlocks < 0 {
		panic("kernel: Q8_0R16In.Pack: " + strconv.Itoa(n) + " vectors (1 to 8) of " + strconv.Itoa(nBlocks) + " blocks")
	}
	for j, x := range xs {
		if len(x) < nBlocks*Q8_0BlockSize {
			panic("kernel: Q8_0R16In.Pack: vector " + strconv.Itoa(j) + " has " + strconv.Itoa(len(x)) +
				" bytes, want " + strconv.Itoa(nBlocks*Q8_0BlockSize))
		}
	}
	p.nBlocks, p.n = nBlocks, n
	p.q = grow(p.q, nBlocks*n*Q8_0BlockLen)
	p.d = grow(p.d, nBlocks*n)
	p.c = grow(p.c, nBlocks*n)
	packR16(xs, nBlocks, p.q, p.d, p.c)
}

// packQ8_0R16Generic is the loop of [Q8_0R16In.Pack], block by block and
// within a block vector by vector: the scale, the quants and −128·Σquants.
func packQ8_0R16Generic(xs [][]byte, nBlocks int, q []byte, d []float32, c []int32) {
	n := len(xs)
	for b := range nBlocks {
		for j, x := range xs {
			blk := (*[Q8_0BlockSize]byte)(x[b*Q8_0BlockSize:])
			d[b*n+j] = F16ToF32(uint16(blk[0]) | uint16(blk[1])<<8)
			qs := (*[Q8_0BlockLen]byte)(q[(b*n+j)*Q8_0BlockLen:])
			*qs = [Q8_0BlockLen]byte(blk[2:])
			c[b*n+j] = -128 * sumInt8x32(qs)
		}
	}
}

// sumInt8x32 is the sum of 32 signed bytes, eight at a time in a word:
// with the sign bit flipped each byte is its value plus 128, unsigned, and
// adding neighbours into 16-bit lanes (at most 4·510, no carry between
// lanes), then the lanes with one multiply, gives Σ(v+128) = Σv + 4096.
func sumInt8x32(q *[Q8_0BlockLen]byte) int32 {
	const flip, even = 0x8080808080808080, 0x00FF00FF00FF00FF
	var lanes uint64
	for i := 0; i < Q8_0BlockLen; i += 8 {
		w := binary.LittleEndian.Uint64(q[i:]) ^ flip
		lanes += w&even + w>>8&even
	}
	return int32(lanes*0x0001000100010001>>48) - 4096
}

// grow returns s resized to n, reusing its storage when it is big enough.
func grow[T any](s []T, n int) []T {
	if n > cap(s) {
		return make([]T, n)
	}
	return s[:n]
}

// MulQ8_0R16 multiplies groups·16 rows in the R16 layout, w starting at a
// group, by the packed vectors of x:
//
//	out[(g·n + j)·16 + r] = row 16g+r · vector j     for g < groups, j < n, r < 16
//
// with n = x.Len(), in the order of ggml's generic Q8_0 dot product (see
// the top of this file). It panics if groups is negative, w is shorter
// than groups·16 rows or out than groups·16·n.
func MulQ8_0R16(w []byte, groups int, x *Q8_0R16In, out []float32) {
	n := groups * x.nBlocks * r16Block
	if groups < 0 || len(w) < n || len(out) < groups*R16Rows*x.n {
		panic("kernel: MulQ8_0R16: groups = " + strconv.Itoa(groups) + " needs " + strconv.Itoa(n) +
			" bytes of w and " + strconv.Itoa(groups*R16Rows*x.n) + " of out, have " + strconv.Itoa(len(w)) +
			" and " + strconv.Itoa(len(out)))
	}
	active.mulQ8_0R16(w[:n], groups, x, out[:groups*R16Rows*x.n], R16Rows*x.n, R16Rows)
}

// MulQ8_0R16Rows is [MulQ8_0R16] writing each vector's products to its own
// row of out, stride values apart:
//
//	out[j·stride + 16g + r] = row 16g+r · vector j     for g < groups, j < n, r < 16
//
// so that a product's outputs need no copy out of a compact scratch (a
// small model's output projection writes 129,280 values per vector). It
// panics if groups is negative, stride is less than groups·16, w is
// shorter than groups·16 rows or out than (n−1)·stride + groups·16.
func MulQ8_0R16Rows(w []byte, groups int, x *Q8_0R16In, out []float32, stride int) {
	n := groups * x.nBlocks * r16Block
	need := (x.n-1)*stride + groups*R16Rows
	if groups < 0 || stride < groups*R16Rows || len(w) < n || len(out) < need {
		panic("kernel: MulQ8_0R16Rows: groups = " + strconv.Itoa(groups) + ", stride = " + strconv.Itoa(stride) +
			" needs " + strconv.Itoa(n) + " bytes of w and " + strconv.Itoa(need) + " of out, have " + strconv.Itoa(len(w)) +
			" and " + strconv.Itoa(len(out)))
	}
	if groups == 0 {
		return
	}
	active.mulQ8_0R16(w[:n], groups, x, out[:need], R16Rows, stride)
}

// PreferR16 reports whether the active set multiplies Q8_0 weights faster
// in the R16 layout than as stored, so that a backend should repack them.
// Every set computes R16 products; the generic and AVX2 ones only through
// mulQ8_0R16Generic.
func PreferR16() bool { return active.preferR16 }

// mulQ8_0R16Generic is the reference loop of [MulQ8_0R16] and
// [MulQ8_0R16Rows], group g's sum for vector j and row r going to
// out[g·gstride + j·jstride + r]:
//
//	for each row r and vector j:
//		s := float32(0)
//		for each block b:
//			sumi := Σᵢ int32(q_w[i]) · int32(q_x[i])           exact
//			d := float32(d_w · d_x)
//			s = float32(s + float32(float32(sumi) · d))
//		out = s
func mulQ8_0R16Generic(w []byte, groups int, x *Q8_0R16In, out []float32, gstride, jstride int) {
	nb, n := x.nBlocks, x.n
	for g := range groups {
		for j := range n {
			for r := range R16Rows {
				var s float32
				for b := range nb {
					blk := (*[r16Block]byte)(w[(g*nb+b)*r16Block:])
					q := x.q[(b*n+j)*Q8_0BlockLen:]
					var sumi int32
					for k := range 8 {
						for i := range 4 {
							sumi += int32(int8(blk[32+64*k+4*r+i]^0x80)) * int32(int8(q[4*k+i]))
						}
					}
					d := float32(F16ToF32(uint16(blk[2*r])|uint16(blk[2*r+1])<<8) * x.d[b*n+j])
					s += float32(float32(sumi) * d)
				}
				out[g*gstride+j*jstride+r] = s
			}
		}
	}
}
