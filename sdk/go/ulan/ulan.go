// Package ulan is the Go guest SDK's common part: the ABI marker, the
// allocator the host writes through, the config hand-off, logging and error
// text (sdk/ABI.md §1–§5). A plugin imports it through its kind's package
// (sdk/go/hook, …) and builds with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o plugin.wasm .
//
// Outside wasip1 the same API compiles natively, so a plugin's logic can be
// unit-tested with `go test`: Log writes to stderr and nothing is exported.
package ulan

import (
	"errors"
	"fmt"
	"sync"
)

// Status codes (sdk/ABI.md §3).
const (
	StatusOK              int32 = 0
	StatusInvalidArgument int32 = 1
	StatusNotFound        int32 = 2
	StatusBufferTooSmall  int32 = 3
	StatusUnsupported     int32 = 4
	StatusInternal        int32 = 5
)

// Level is a log level.
type Level int32

// Log levels.
const (
	Debug Level = 0
	Info  Level = 1
	Warn  Level = 2
	Error Level = 3
)

var (
	mu            sync.Mutex
	onInit        func(config []byte) error
	onReconfigure func(config []byte) error
)

// OnInit sets the function that receives the plugin's configuration (JSON,
// already checked against the manifest's schema) once per instance. An
// error refuses the instance, and with it the plugin's load.
func OnInit(f func(config []byte) error) {
	mu.Lock()
	defer mu.Unlock()
	onInit = f
}

// Init runs the OnInit function; the ulan_init export and tests call it.
func Init(config []byte) error {
	mu.Lock()
	f := onInit
	mu.Unlock()
	if f == nil {
		return nil
	}
	return f(config)
}

// OnReconfigure sets the function that takes a new configuration in place
// (the ulan_reconfigure export), so that a reload that changes only the
// plugin's config reuses warm instances instead of starting new ones. It
// must leave the instance as it was when it returns an error: the reload
// is then refused. Without it a config change starts new instances, each
// given the config through OnInit. A plugin whose OnInit only replaces what
// it built from the config can pass the same function to both.
func OnReconfigure(f func(config []byte) error) {
	mu.Lock()
	defer mu.Unlock()
	onReconfigure = f
}

// ErrUnsupported is what Reconfigure returns when the plugin set no
// OnReconfigure function; the export answers StatusUnsupported.
var ErrUnsupported = errors.New("the plugin does not take a new config in place")

// Reconfigure runs the OnReconfigure function; the ulan_reconfigure export
// and tests call it.
func Reconfigure(config []byte) error {
	mu.Lock()
	f := onReconfigure
	mu.Unlock()
	if f == nil {
		return ErrUnsupported
	}
	return f(config)
}

// Guard runs f and turns a panic into an error, so that a bug in a plugin
// becomes an error status with its message instead of a trap that loses the
// instance. Every export of the SDK runs under it.
func Guard(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return f()
}

// Status reports err to the host (through SetError) and returns the status
// code an export should return: OK for nil.
func Status(err error) int32 {
	if err == nil {
		return StatusOK
	}
	SetError(err.Error())
	return StatusInternal
}
