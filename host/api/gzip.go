package api

import (
	"compress/gzip"
	"fmt"
	"io"

	"connectrpc.com/connect"
)

// withGzip replaces connect's gzip with one whose decompressor stops once it has
// produced more than maxBytes (when maxBytes > 0). Connect reads a compressed
// message through a limit of maxBytes+1 and refuses a larger one with
// ResourceExhausted, but first decompresses the rest of it to count its size: a
// gzip body within the transport's cap can expand a thousandfold, so one request
// of limits.max_request_bytes cost seconds of CPU per MiB of limit. This reader
// ends that count with an error at once, which connect reports as the same
// ResourceExhausted naming the limit.
func withGzip(maxBytes int64) connect.HandlerOption {
	return connect.WithCompression("gzip",
		func() connect.Decompressor { return &cappedGzip{max: maxBytes} },
		func() connect.Compressor { return gzip.NewWriter(nil) },
	)
}

// cappedGzip is a gzip reader that fails once it has produced more than max
// bytes since its last Reset; max <= 0 means no cap.
type cappedGzip struct {
	r   gzip.Reader
	max int64
	n   int64
}

// Read decompresses into p.
func (z *cappedGzip) Read(p []byte) (int, error) {
	if z.max > 0 {
		if z.n > z.max {
			return 0, fmt.Errorf("gzip: stopped decompressing past %d bytes", z.max)
		}
		// At most one byte past the cap, for the caller to see that it was passed.
		if room := z.max + 1 - z.n; int64(len(p)) > room {
			p = p[:room]
		}
	}
	n, err := z.r.Read(p)
	z.n += int64(n)
	return n, err
}

// Reset starts decompressing r.
func (z *cappedGzip) Reset(r io.Reader) error {
	z.n = 0
	return z.r.Reset(r)
}

// Close ends the current stream.
func (z *cappedGzip) Close() error { return z.r.Close() }
