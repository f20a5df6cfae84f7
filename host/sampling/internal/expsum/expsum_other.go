//go:build !amd64 || noasm

package expsum

func sum8(x []float32, m float32, lanes *[8]float64) { sum8Go(x, m, lanes) }

func exps8(x []float32, m float32, out []float32) { exps8Go(x, m, out) }

func scan8(x []float32, l *scanLanes) { scan8Go(x, l) }

func div8(x []float32, t float32) { div8Go(x, t) }

func firstAbove8(x []float32, t float32) int { return firstAbove8Go(x, t) }

func scanAbove8(x []float32, t float32, l *scanLanes) int { return scanAbove8Go(x, t, l) }
