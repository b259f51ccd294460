//go:build !amd64 || purego

package quantize

const haveFitLevels4 = false

func fitLevels4(xs, ws *float32, n int, iscale, lo, hi float32, acc *[8]float32) {
	panic("unreachable: fitLevels4 is amd64 only")
}

func minMax4(xs *float32, n int, acc *[8]float32) {
	panic("unreachable: minMax4 is amd64 only")
}

func assign4(xs *float32, qs *int32, n int, id, z, lo, hi float32) {
	panic("unreachable: assign4 is amd64 only")
}
