package plugin

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
)

// logWriter forwards an instance's stdout and stderr to the log, a line at a
// time, until its byte budget is spent; then it notes the truncation once
// and drops the rest, so a chatty plugin cannot flood the server's log.
type logWriter struct {
	log *slog.Logger

	mu        sync.Mutex
	left      int
	line      bytes.Buffer
	truncated bool
}

func newLogWriter(log *slog.Logger, budget int) *logWriter {
	return &logWriter{log: log, left: budget}
}

func (w *logWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(b)
	if w.left <= 0 {
		if !w.truncated {
			w.truncated = true
			w.log.Warn("plugin output budget spent; further output dropped")
		}
		return n, nil
	}
	if len(b) > w.left {
		b = b[:w.left]
	}
	w.left -= len(b)
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			w.line.Write(b)
			break
		}
		w.line.Write(b[:i])
		w.log.Info("plugin output", Said, slog.String("line", strings.ToValidUTF8(w.line.String(), "\uFFFD")))
		w.line.Reset()
		b = b[i+1:]
	}
	return n, nil
}
