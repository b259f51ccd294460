package blob

// Sub-byte data types (Int4, UInt1/2/3/4/6) are packed LSB-first: element i
// occupies bits [i·b, (i+1)·b) of the byte stream, with bit 0 the least
// significant bit of byte 0, so for 4-bit types element 2k is the low nibble
// of byte k. An element may straddle a byte boundary (3 and 6 bits).

// PackBits packs the low bits bits of each value LSB-first and returns
// ceil(len(values)·bits/8) bytes; unused bits of the last byte are zero.
// Signed Int4 values are stored as their two's-complement nibble, so pass
// uint8(v). bits must be between 1 and 8.
func PackBits(bits int, values []uint8) []byte {
	out := make([]byte, (len(values)*bits+7)/8)
	mask := uint16(1)<<bits - 1
	for i, v := range values {
		bit := i * bits
		w := (uint16(v) & mask) << (bit % 8)
		out[bit/8] |= byte(w)
		if hi := byte(w >> 8); hi != 0 {
			out[bit/8+1] |= hi
		}
	}
	return out
}

// UnpackBits returns the first n bits-wide fields of data, unpacked
// LSB-first, as unsigned values. For Int4, sign-extend with int8(v<<4)>>4.
// It panics if data is shorter than ceil(n·bits/8) bytes, like an
// out-of-range slice index; Reader.Blob never returns such data.
func UnpackBits(bits int, data []byte, n int) []uint8 {
	out := make([]uint8, n)
	mask := uint16(1)<<bits - 1
	for i := range out {
		bit := i * bits
		w := uint16(data[bit/8])
		if bit%8+bits > 8 {
			w |= uint16(data[bit/8+1]) << 8
		}
		out[i] = uint8(w >> (bit % 8) & mask)
	}
	return out
}
