//go:build amd64 && !noasm

#include "textflag.h"

// Eight copies of each constant, for 256-bit memory operands.
DATA log2e<>+0(SB)/4, $0x3fb8aa3b
DATA log2e<>+4(SB)/4, $0x3fb8aa3b
DATA log2e<>+8(SB)/4, $0x3fb8aa3b
DATA log2e<>+12(SB)/4, $0x3fb8aa3b
DATA log2e<>+16(SB)/4, $0x3fb8aa3b
DATA log2e<>+20(SB)/4, $0x3fb8aa3b
DATA log2e<>+24(SB)/4, $0x3fb8aa3b
DATA log2e<>+28(SB)/4, $0x3fb8aa3b
GLOBL log2e<>(SB), RODATA|NOPTR, $32
DATA ln2hi<>+0(SB)/4, $0x3f318000
DATA ln2hi<>+4(SB)/4, $0x3f318000
DATA ln2hi<>+8(SB)/4, $0x3f318000
DATA ln2hi<>+12(SB)/4, $0x3f318000
DATA ln2hi<>+16(SB)/4, $0x3f318000
DATA ln2hi<>+20(SB)/4, $0x3f318000
DATA ln2hi<>+24(SB)/4, $0x3f318000
DATA ln2hi<>+28(SB)/4, $0x3f318000
GLOBL ln2hi<>(SB), RODATA|NOPTR, $32
DATA ln2lo<>+0(SB)/4, $0xb95e8083
DATA ln2lo<>+4(SB)/4, $0xb95e8083
DATA ln2lo<>+8(SB)/4, $0xb95e8083
DATA ln2lo<>+12(SB)/4, $0xb95e8083
DATA ln2lo<>+16(SB)/4, $0xb95e8083
DATA ln2lo<>+20(SB)/4, $0xb95e8083
DATA ln2lo<>+24(SB)/4, $0xb95e8083
DATA ln2lo<>+28(SB)/4, $0xb95e8083
GLOBL ln2lo<>(SB), RODATA|NOPTR, $32
DATA p0<>+0(SB)/4, $0x39506967
DATA p0<>+4(SB)/4, $0x39506967
DATA p0<>+8(SB)/4, $0x39506967
DATA p0<>+12(SB)/4, $0x39506967
DATA p0<>+16(SB)/4, $0x39506967
DATA p0<>+20(SB)/4, $0x39506967
DATA p0<>+24(SB)/4, $0x39506967
DATA p0<>+28(SB)/4, $0x39506967
GLOBL p0<>(SB), RODATA|NOPTR, $32
DATA p1<>+0(SB)/4, $0x3ab743ce
DATA p1<>+4(SB)/4, $0x3ab743ce
DATA p1<>+8(SB)/4, $0x3ab743ce
DATA p1<>+12(SB)/4, $0x3ab743ce
DATA p1<>+16(SB)/4, $0x3ab743ce
DATA p1<>+20(SB)/4, $0x3ab743ce
DATA p1<>+24(SB)/4, $0x3ab743ce
DATA p1<>+28(SB)/4, $0x3ab743ce
GLOBL p1<>(SB), RODATA|NOPTR, $32
DATA p2<>+0(SB)/4, $0x3c088908
DATA p2<>+4(SB)/4, $0x3c088908
DATA p2<>+8(SB)/4, $0x3c088908
DATA p2<>+12(SB)/4, $0x3c088908
DATA p2<>+16(SB)/4, $0x3c088908
DATA p2<>+20(SB)/4, $0x3c088908
DATA p2<>+24(SB)/4, $0x3c088908
DATA p2<>+28(SB)/4, $0x3c088908
GLOBL p2<>(SB), RODATA|NOPTR, $32
DATA p3<>+0(SB)/4, $0x3d2aa9c1
DATA p3<>+4(SB)/4, $0x3d2aa9c1
DATA p3<>+8(SB)/4, $0x3d2aa9c1
DATA p3<>+12(SB)/4, $0x3d2aa9c1
DATA p3<>+16(SB)/4, $0x3d2aa9c1
DATA p3<>+20(SB)/4, $0x3d2aa9c1
DATA p3<>+24(SB)/4, $0x3d2aa9c1
DATA p3<>+28(SB)/4, $0x3d2aa9c1
GLOBL p3<>(SB), RODATA|NOPTR, $32
DATA p4<>+0(SB)/4, $0x3e2aaaaa
DATA p4<>+4(SB)/4, $0x3e2aaaaa
DATA p4<>+8(SB)/4, $0x3e2aaaaa
DATA p4<>+12(SB)/4, $0x3e2aaaaa
DATA p4<>+16(SB)/4, $0x3e2aaaaa
DATA p4<>+20(SB)/4, $0x3e2aaaaa
DATA p4<>+24(SB)/4, $0x3e2aaaaa
DATA p4<>+28(SB)/4, $0x3e2aaaaa
GLOBL p4<>(SB), RODATA|NOPTR, $32
DATA p5<>+0(SB)/4, $0x3f000000
DATA p5<>+4(SB)/4, $0x3f000000
DATA p5<>+8(SB)/4, $0x3f000000
DATA p5<>+12(SB)/4, $0x3f000000
DATA p5<>+16(SB)/4, $0x3f000000
DATA p5<>+20(SB)/4, $0x3f000000
DATA p5<>+24(SB)/4, $0x3f000000
DATA p5<>+28(SB)/4, $0x3f000000
GLOBL p5<>(SB), RODATA|NOPTR, $32
DATA one<>+0(SB)/4, $0x3f800000
DATA one<>+4(SB)/4, $0x3f800000
DATA one<>+8(SB)/4, $0x3f800000
DATA one<>+12(SB)/4, $0x3f800000
DATA one<>+16(SB)/4, $0x3f800000
DATA one<>+20(SB)/4, $0x3f800000
DATA one<>+24(SB)/4, $0x3f800000
DATA one<>+28(SB)/4, $0x3f800000
GLOBL one<>(SB), RODATA|NOPTR, $32
DATA floor<>+0(SB)/4, $0xc2ae0000
DATA floor<>+4(SB)/4, $0xc2ae0000
DATA floor<>+8(SB)/4, $0xc2ae0000
DATA floor<>+12(SB)/4, $0xc2ae0000
DATA floor<>+16(SB)/4, $0xc2ae0000
DATA floor<>+20(SB)/4, $0xc2ae0000
DATA floor<>+24(SB)/4, $0xc2ae0000
DATA floor<>+28(SB)/4, $0xc2ae0000
GLOBL floor<>(SB), RODATA|NOPTR, $32
DATA bias<>+0(SB)/4, $127
DATA bias<>+4(SB)/4, $127
DATA bias<>+8(SB)/4, $127
DATA bias<>+12(SB)/4, $127
DATA bias<>+16(SB)/4, $127
DATA bias<>+20(SB)/4, $127
DATA bias<>+24(SB)/4, $127
DATA bias<>+28(SB)/4, $127
GLOBL bias<>(SB), RODATA|NOPTR, $32

// func sum8AVX2(x []float32, m float32, lanes *[8]float64)
// The operations of exp in expsum.go, eight lanes at a time; lanes 0-3 sum
// in Y14, lanes 4-7 in Y15, in float64.
TEXT ·sum8AVX2(SB), NOSPLIT, $0-40
	MOVQ x_base+0(FP), SI
	MOVQ x_len+8(FP), CX
	VBROADCASTSS m+24(FP), Y0
	MOVQ lanes+32(FP), DI
	VMOVUPD (DI), Y14
	VMOVUPD 32(DI), Y15
	SHRQ $3, CX
	JZ done

loop:
	VMOVUPS (SI), Y2
	VSUBPS Y0, Y2, Y2           // x - m
	VMAXPS floor<>(SB), Y2, Y2  // clamped at floor
	VMULPS log2e<>(SB), Y2, Y4  // x·log2e
	VROUNDPS $0, Y4, Y4         // n, to nearest even
	VMULPS ln2hi<>(SB), Y4, Y6
	VSUBPS Y6, Y2, Y2           // r = x - n·ln2hi
	VMULPS ln2lo<>(SB), Y4, Y6
	VSUBPS Y6, Y2, Y2           // r -= n·ln2lo
	VMULPS Y2, Y2, Y8           // z = r·r
	VMULPS p0<>(SB), Y2, Y10
	VADDPS p1<>(SB), Y10, Y10
	VMULPS Y2, Y10, Y10
	VADDPS p2<>(SB), Y10, Y10
	VMULPS Y2, Y10, Y10
	VADDPS p3<>(SB), Y10, Y10
	VMULPS Y2, Y10, Y10
	VADDPS p4<>(SB), Y10, Y10
	VMULPS Y2, Y10, Y10
	VADDPS p5<>(SB), Y10, Y10
	VMULPS Y8, Y10, Y10         // y·z
	VADDPS Y2, Y10, Y10         // + r
	VADDPS one<>(SB), Y10, Y10  // + 1
	VCVTTPS2DQ Y4, Y4           // n as int32 (exact)
	VPADDD bias<>(SB), Y4, Y4
	VPSLLD $23, Y4, Y4          // 2^n
	VMULPS Y4, Y10, Y10         // exp(x - m)
	VCVTPS2PD X10, Y11          // lanes 0-3 in float64
	VEXTRACTF128 $1, Y10, X12
	VCVTPS2PD X12, Y12          // lanes 4-7
	VADDPD Y11, Y14, Y14
	VADDPD Y12, Y15, Y15
	ADDQ $32, SI
	DECQ CX
	JNZ loop

done:
	VMOVUPD Y14, (DI)
	VMOVUPD Y15, 32(DI)
	VZEROUPPER
	RET


// func exps8AVX2(x []float32, m float32, out []float32)
// exp(x − m) of each value, as exp in expsum.go; len(x) is a multiple of 8
// and out is as long.
TEXT ·exps8AVX2(SB), NOSPLIT, $0-56
	MOVQ x_base+0(FP), SI
	MOVQ x_len+8(FP), CX
	VBROADCASTSS m+24(FP), Y0
	MOVQ out_base+32(FP), DI
	SHRQ $3, CX
	JZ expsdone

expsloop:
	VMOVUPS (SI), Y2
	VSUBPS Y0, Y2, Y2           // x - m
	VMAXPS floor<>(SB), Y2, Y2  // clamped at floor
	VMULPS log2e<>(SB), Y2, Y4  // x·log2e
	VROUNDPS $0, Y4, Y4         // n, to nearest even
	VMULPS ln2hi<>(SB), Y4, Y6
	VSUBPS Y6, Y2, Y2           // r = x - n·ln2hi
	VMULPS ln2lo<>(SB), Y4, Y6
	VSUBPS Y6, Y2, Y2           // r -= n·ln2lo
	VMULPS Y2, Y2, Y8           // z = r·r
	VMULPS p0<>(SB), Y2, Y10
	VADDPS p1<>(SB), Y10, Y10
	VMULPS Y2, Y10, Y10
	VADDPS p2<>(SB), Y10, Y10
	VMULPS Y2, Y10, Y10
	VADDPS p3<>(SB), Y10, Y10
	VMULPS Y2, Y10, Y10
	VADDPS p4<>(SB), Y10, Y10
	VMULPS Y2, Y10, Y10
	VADDPS p5<>(SB), Y10, Y10
	VMULPS Y8, Y10, Y10         // y·z
	VADDPS Y2, Y10, Y10         // + r
	VADDPS one<>(SB), Y10, Y10  // + 1
	VCVTTPS2DQ Y4, Y4           // n as int32 (exact)
	VPADDD bias<>(SB), Y4, Y4
	VPSLLD $23, Y4, Y4          // 2^n
	VMULPS Y4, Y10, Y10         // exp(x - m)
	VMOVUPS Y10, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNZ expsloop

expsdone:
	VZEROUPPER
	RET
