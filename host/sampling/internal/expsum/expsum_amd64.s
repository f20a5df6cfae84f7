//go:build amd64 && !noasm

#include "textflag.h"

// CONST8 defines eight copies of a 32-bit constant, for 256-bit memory
// operands.
#define CONST8(name, bits) \
	DATA name<>+0(SB)/4, bits; DATA name<>+4(SB)/4, bits; \
	DATA name<>+8(SB)/4, bits; DATA name<>+12(SB)/4, bits; \
	DATA name<>+16(SB)/4, bits; DATA name<>+20(SB)/4, bits; \
	DATA name<>+24(SB)/4, bits; DATA name<>+28(SB)/4, bits; \
	GLOBL name<>(SB), RODATA|NOPTR, $32

// SCANGROUP scans one group of eight floats, X: it counts the finite ones
// in Y3 and the −Inf ones in Y5 (as −1 per lane, so subtracted) and takes
// the lane maxima of the finite ones into MAX (a non-finite value counts
// as −Inf). Y6, Y7 and Y8 hold the absolute-value mask, MaxFloat32 and
// −Inf; Y9–Y11 are scratch.
#define SCANGROUP(X, MAX) \
	VANDPS Y6, X, Y9; \
	VCMPPS $0x12, Y7, Y9, Y9; \
	VCMPPS $0x00, Y8, X, Y10; \
	VPSUBD Y9, Y3, Y3; \
	VPSUBD Y10, Y5, Y5; \
	VBLENDVPS Y9, X, Y8, Y11; \
	VMAXPS Y11, MAX, MAX

CONST8(log2e, $0x3fb8aa3b)
CONST8(ln2hi, $0x3f318000)
CONST8(ln2lo, $0xb95e8083)
CONST8(p0, $0x39506967)
CONST8(p1, $0x3ab743ce)
CONST8(p2, $0x3c088908)
CONST8(p3, $0x3d2aa9c1)
CONST8(p4, $0x3e2aaaaa)
CONST8(p5, $0x3f000000)
CONST8(one, $0x3f800000)
CONST8(floor, $0xc2ae0000)
CONST8(bias, $127)
CONST8(absmask, $0x7fffffff)
CONST8(maxfinite, $0x7f7fffff)
CONST8(neginf, $0xff800000)

// EXP8 computes Y10 = exp(Y2 − Y0) in eight lanes, the operations of exp in
// expsum.go in the same order: clamp at floor, n = round(x·log2e) to
// nearest even, r = x − n·ln2hi − n·ln2lo, the polynomial in r and r², then
// the scale by 2^n built in the exponent bits. It overwrites Y2, Y4, Y6, Y8.
#define EXP8 \
	VSUBPS Y0, Y2, Y2; \
	VMAXPS floor<>(SB), Y2, Y2; \
	VMULPS log2e<>(SB), Y2, Y4; \
	VROUNDPS $0, Y4, Y4; \
	VMULPS ln2hi<>(SB), Y4, Y6; \
	VSUBPS Y6, Y2, Y2; \
	VMULPS ln2lo<>(SB), Y4, Y6; \
	VSUBPS Y6, Y2, Y2; \
	VMULPS Y2, Y2, Y8; \
	VMULPS p0<>(SB), Y2, Y10; \
	VADDPS p1<>(SB), Y10, Y10; \
	VMULPS Y2, Y10, Y10; \
	VADDPS p2<>(SB), Y10, Y10; \
	VMULPS Y2, Y10, Y10; \
	VADDPS p3<>(SB), Y10, Y10; \
	VMULPS Y2, Y10, Y10; \
	VADDPS p4<>(SB), Y10, Y10; \
	VMULPS Y2, Y10, Y10; \
	VADDPS p5<>(SB), Y10, Y10; \
	VMULPS Y8, Y10, Y10; \
	VADDPS Y2, Y10, Y10; \
	VADDPS one<>(SB), Y10, Y10; \
	VCVTTPS2DQ Y4, Y4; \
	VPADDD bias<>(SB), Y4, Y4; \
	VPSLLD $23, Y4, Y4; \
	VMULPS Y4, Y10, Y10

// func sum8AVX2(x []float32, m float32, lanes *[8]float64)
// Lanes 0-3 sum in Y14, lanes 4-7 in Y15, in float64.
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
	EXP8
	VCVTPS2PD X10, Y11
	VEXTRACTF128 $1, Y10, X12
	VCVTPS2PD X12, Y12
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
// len(x) is a multiple of 8 and out is as long.
TEXT ·exps8AVX2(SB), NOSPLIT, $0-56
	MOVQ x_base+0(FP), SI
	MOVQ x_len+8(FP), CX
	VBROADCASTSS m+24(FP), Y0
	MOVQ out_base+32(FP), DI
	SHRQ $3, CX
	JZ expsdone

expsloop:
	VMOVUPS (SI), Y2
	EXP8
	VMOVUPS Y10, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNZ expsloop

expsdone:
	VZEROUPPER
	RET

// func scan8AVX2(x []float32, l *scanLanes)
// Y1 holds the lanes' max, Y3 their finite counts, Y5 their −Inf counts (a
// compare's all-ones lane is −1, so subtracting it counts one).
TEXT ·scan8AVX2(SB), NOSPLIT, $0-32
	MOVQ x_base+0(FP), SI
	MOVQ x_len+8(FP), CX
	MOVQ l+24(FP), DI
	VMOVUPS (DI), Y1
	VMOVDQU 32(DI), Y3
	VMOVDQU 64(DI), Y5
	VMOVUPS absmask<>(SB), Y6
	VMOVUPS maxfinite<>(SB), Y7
	VMOVUPS neginf<>(SB), Y8
	SHRQ $3, CX
	JZ scandone

scanloop:
	VMOVUPS (SI), Y2
	SCANGROUP(Y2, Y1)
	ADDQ $32, SI
	DECQ CX
	JNZ scanloop

scandone:
	VMOVUPS Y1, (DI)
	VMOVDQU Y3, 32(DI)
	VMOVDQU Y5, 64(DI)
	VZEROUPPER
	RET

// func div8AVX2(x []float32, t float32)
TEXT ·div8AVX2(SB), NOSPLIT, $0-28
	MOVQ x_base+0(FP), SI
	MOVQ x_len+8(FP), CX
	VBROADCASTSS t+24(FP), Y0
	SHRQ $3, CX
	JZ divdone

divloop:
	VMOVUPS (SI), Y2
	VDIVPS Y0, Y2, Y2
	VMOVUPS Y2, (SI)
	ADDQ $32, SI
	DECQ CX
	JNZ divloop

divdone:
	VZEROUPPER
	RET

// func firstAbove8AVX2(x []float32, t float32) int
TEXT ·firstAbove8AVX2(SB), NOSPLIT, $0-40
	MOVQ x_base+0(FP), SI
	MOVQ x_len+8(FP), CX
	VBROADCASTSS t+24(FP), Y0
	XORQ AX, AX

aboveloop:
	CMPQ AX, CX
	JGE abovedone
	VMOVUPS (SI)(AX*4), Y2
	VCMPPS $0x1e, Y0, Y2, Y2   // x > t, ordered (GT_OQ): false for NaN
	VMOVMSKPS Y2, DX
	TESTL DX, DX
	JNZ abovedone
	ADDQ $8, AX
	JMP aboveloop

abovedone:
	MOVQ AX, ret+32(FP)
	VZEROUPPER
	RET

// func scanAbove8AVX2(x []float32, t float32, l *scanLanes) int
// scan8AVX2's loop that stops, before scanning it, at the first group of
// eight that holds a value above t (firstAbove8AVX2's test).
TEXT ·scanAbove8AVX2(SB), NOSPLIT, $0-48
	MOVQ x_base+0(FP), SI
	MOVQ x_len+8(FP), CX
	VBROADCASTSS t+24(FP), Y0
	MOVQ l+32(FP), DI
	VMOVUPS (DI), Y1
	VMOVDQU 32(DI), Y3
	VMOVDQU 64(DI), Y5
	VMOVUPS absmask<>(SB), Y6
	VMOVUPS maxfinite<>(SB), Y7
	VMOVUPS neginf<>(SB), Y8
	VMOVUPS Y8, Y4             // a second lane maximum, for the unrolled loop
	XORQ AX, AX

	// Four groups a turn while none of them holds a value above t: the
	// lane maxima go to two registers (merged at the end: the same
	// maxima) and the counts add up as in the loop below. A turn with a
	// value above t goes to that loop, which finds its group.
scanabove4loop:
	LEAQ 32(AX), R8
	CMPQ R8, CX
	JG scanaboveloop
	VMOVUPS (SI)(AX*4), Y2
	VMOVUPS 32(SI)(AX*4), Y13
	VMOVUPS 64(SI)(AX*4), Y14
	VMOVUPS 96(SI)(AX*4), Y15
	VCMPPS $0x1e, Y0, Y2, Y12
	VCMPPS $0x1e, Y0, Y13, Y9
	VORPS Y9, Y12, Y12
	VCMPPS $0x1e, Y0, Y14, Y9
	VORPS Y9, Y12, Y12
	VCMPPS $0x1e, Y0, Y15, Y9
	VORPS Y9, Y12, Y12
	VMOVMSKPS Y12, DX
	TESTL DX, DX
	JNZ scanaboveloop
	SCANGROUP(Y2, Y1)
	SCANGROUP(Y13, Y4)
	SCANGROUP(Y14, Y1)
	SCANGROUP(Y15, Y4)
	MOVQ R8, AX
	JMP scanabove4loop

scanaboveloop:
	CMPQ AX, CX
	JGE scanabovedone
	VMOVUPS (SI)(AX*4), Y2
	VCMPPS $0x1e, Y0, Y2, Y12  // x > t, ordered (GT_OQ): false for NaN
	VMOVMSKPS Y12, DX
	TESTL DX, DX
	JNZ scanabovedone
	SCANGROUP(Y2, Y1)
	ADDQ $8, AX
	JMP scanaboveloop

scanabovedone:
	VMAXPS Y4, Y1, Y1
	VMOVUPS Y1, (DI)
	VMOVDQU Y3, 32(DI)
	VMOVDQU Y5, 64(DI)
	MOVQ AX, ret+40(FP)
	VZEROUPPER
	RET
