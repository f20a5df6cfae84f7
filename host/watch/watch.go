// Package watch follows a configuration file and the plugin files it names,
// and reports debounced changes.
//
// It is the detection half of hot reload: a [Watcher] is given a set of file
// paths (the config file, the plugin .wasm files in use) and sends a [Change]
// naming those whose content changed. Koanf's file watcher is not used
// because it stops for good once the file is removed and does not debounce.
//
// # Why parent directories
//
// The Watcher never asks fsnotify to watch a file itself; it watches the
// directory holding each file (each directory once). An inotify watch is tied
// to an inode, not to a name, so a watch on the file is lost as soon as the
// file is replaced the way careful writers replace files:
//
//   - editors and config-management tools write a temporary file and rename
//     it over the old one; the watched inode is unlinked and the new file is
//     never watched;
//   - delete-then-recreate does the same in two steps;
//   - Kubernetes mounts a ConfigMap as dir/config.yaml -> ..data/config.yaml
//     with dir/..data -> ..2024_01_02_03_04_05.123; an update writes a new
//     timestamped directory, points a new ..data_tmp symlink at it and
//     renames ..data_tmp over ..data. Nothing happens to the name
//     config.yaml, nor to the old target until it is deleted.
//
// A directory watch sees all of these as events on names inside the
// directory, and it survives them.
//
// # Why content fingerprints
//
// Because the events for a file can arrive under other names (..data above),
// or for names that have nothing to do with the watched files (an editor's
// swap file, a log next to the plugins), events are not mapped to files.
// Instead every event in a watched directory (re)arms a debounce timer and
// marks the directory dirty; when the timer fires, each watched file in a
// dirty directory is fingerprinted (size and a keyed hash of its content, read
// through symlinks, or "missing", or the read error) and only files whose
// fingerprint differs from the last one taken are reported. This also means
// that touching a file or rewriting it with the same bytes is not a change,
// that a burst of writes yields one change (or a few, if the burst has
// pauses longer than the debounce), and that lost events (an inotify queue
// overflow) are recovered from by re-fingerprinting everything.
//
// A file that disappears is reported (its fingerprint becomes "missing"), and
// reported again when it comes back. A symlink whose target lives in another,
// unwatched directory is only re-checked when something happens in the
// symlink's own directory.
//
// # Debounce
//
// The timer fires once no event has arrived for [Options.Debounce]. A
// directory that never goes quiet (a busy log next to the config) cannot
// starve it: files are checked at the latest 10×Debounce after the first
// event of a burst.
//
// # Directories that disappear
//
// If a watched directory is removed or renamed away, the Watcher sends a
// [Change] whose Err wraps [ErrDirGone] (files in it are reported as changed
// once their fingerprint becomes "missing"), then checks every
// [Options.PollInterval] whether the directory is back and re-adds the watch
// when it is, re-fingerprinting its files at once. Polling was chosen over
// watching the grandparent because the grandparent may be gone too (a whole
// tree removed, a volume unmounted), which would need a chain of ancestor
// watches; a stat per missing directory per interval is cheap, and only runs
// while a directory is missing. A directory that is replaced (something
// renamed onto its name) is re-watched at once.
//
// Errors from fsnotify are not fatal either: they are sent as a Change with
// Err set, and every file is re-checked.
//
// # Delivery
//
// Changes are never dropped and the Watcher never blocks on a slow consumer:
// while a Change waits to be received, later changes are merged into it (the
// union of the files, the errors joined).
package watch

import (
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DefaultDebounce is the debounce used when [Options.Debounce] is zero.
const DefaultDebounce = 200 * time.Millisecond

// DefaultPollInterval is the poll interval used when [Options.PollInterval] is zero.
const DefaultPollInterval = time.Second

// maxWaitFactor bounds how long a burst of events can postpone a check:
// at most maxWaitFactor×Debounce after its first event.
const maxWaitFactor = 10

// maxPendingErrs caps the errors kept for a consumer that is not receiving;
// further ones are counted, not kept.
const maxPendingErrs = 16

// ErrClosed is returned by [Watcher.SetFiles] after [Watcher.Close].
var ErrClosed = errors.New("watch: watcher closed")

// ErrDirGone is wrapped by the Err of a [Change] sent when a watched
// directory has disappeared; the Watcher polls for it to come back.
var ErrDirGone = errors.New("watched directory is gone; polling for it to reappear")

// Options configures a [Watcher].
type Options struct {
	// Files are the paths to follow, typically the config file and the
	// plugin files it names. Each file's directory must exist; the file
	// itself need not.
	Files []string
	// Debounce is how long the directories must stay quiet before files are
	// checked; zero means [DefaultDebounce].
	Debounce time.Duration
	// PollInterval is how often a watched directory that has disappeared is
	// checked for having come back; zero means [DefaultPollInterval].
	PollInterval time.Duration
	// Logger receives debug and warning messages; nil means slog.Default().
	Logger *slog.Logger

	// fired, when set (by tests), receives the files found changed by each
	// check that found any, before they are merged into the pending Change.
	fired chan<- []string
}

// Change reports files whose content changed since the previous Change, or
// since they were given to [New] or [Watcher.SetFiles]. At least one of
// Files and Err is set.
type Change struct {
	// Files are the changed files, spelled as they were given, sorted. A file
	// that was removed, or became unreadable, counts as changed.
	Files []string
	// Err, when set, reports a problem that did not stop the Watcher: a
	// watched directory that disappeared (wrapping [ErrDirGone]) or an error
	// from the file-notification layer. Several are joined with errors.Join.
	Err error
}

// Watcher follows a set of files and sends debounced changes on
// [Watcher.Changes]. Create one with [New]; its methods are safe for
// concurrent use.
type Watcher struct {
	fs      *fsnotify.Watcher
	log     *slog.Logger
	opts    Options
	changes chan Change
	setc    chan setRequest
	quit    chan struct{}
	exited  chan struct{}

	closeOnce sync.Once
	closeErr  error

	// Owned by the loop goroutine (and by New before it starts).
	files   map[string]*file // by absolute path
	dirs    map[string]*dir  // by absolute path
	dirty   map[string]bool  // directories with events since the last check
	timer   *time.Timer
	armed   bool
	burst   time.Time // first event of the current burst
	ticker  *time.Ticker
	pending map[string]bool // files to report, by name as given
	errs    []error
	dropped int // errors not kept in errs
}

type file struct {
	name string // as given
	abs  string
	dir  string
	fp   fingerprint
}

type dir struct {
	lost bool // removed; polled for
}

type setRequest struct {
	files []string
	reply chan error
}

// New starts a Watcher following opts.Files. It fingerprints every file
// before returning, so changes made after New returns are reported. It fails,
// naming the path, if a file's directory does not exist or cannot be watched.
func New(opts Options) (*Watcher, error) {
	if opts.Debounce <= 0 {
		opts.Debounce = DefaultDebounce
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch: starting file notification: %w", err)
	}
	w := &Watcher{
		fs:      fsw,
		log:     log.With("component", "watch"),
		opts:    opts,
		changes: make(chan Change),
		setc:    make(chan setRequest),
		quit:    make(chan struct{}),
		exited:  make(chan struct{}),
		files:   map[string]*file{},
		dirs:    map[string]*dir{},
		dirty:   map[string]bool{},
		pending: map[string]bool{},
		timer:   time.NewTimer(time.Hour),
	}
	w.timer.Stop()
	if err := w.setFiles(opts.Files); err != nil {
		_ = fsw.Close()
		return nil, err
	}
	go w.loop()
	return w, nil
}

// Changes returns the channel on which changes are sent. It is closed by
// [Watcher.Close]; changes not yet received then are discarded.
func (w *Watcher) Changes() <-chan Change { return w.changes }

// SetFiles replaces the set of followed files, for example after a reload
// changed the plugins in use. Directories no longer needed stop being
// watched; files that stay keep their fingerprint (so a change not yet
// reported is not lost), new files are fingerprinted before SetFiles returns.
// Each new file's directory must exist, unless it is already followed (and
// perhaps currently missing). On error nothing is changed.
func (w *Watcher) SetFiles(files []string) error {
	req := setRequest{files: slices.Clone(files), reply: make(chan error, 1)}
	select {
	case w.setc <- req:
		return <-req.reply
	case <-w.quit:
		return ErrClosed
	}
}

// Close stops the Watcher, waits for its goroutines to end and closes the
// Changes channel. Calling it again returns the first call's result.
func (w *Watcher) Close() error {
	w.closeOnce.Do(func() {
		close(w.quit)
		<-w.exited
		w.timer.Stop()
		if w.ticker != nil {
			w.ticker.Stop()
		}
		if err := w.fs.Close(); err != nil {
			w.closeErr = fmt.Errorf("watch: closing file notification: %w", err)
		}
		close(w.changes)
	})
	return w.closeErr
}

func (w *Watcher) loop() {
	defer close(w.exited)
	events, errs := w.fs.Events, w.fs.Errors
	for {
		var (
			out  chan<- Change
			next Change
		)
		if len(w.pending) > 0 || len(w.errs) > 0 {
			out, next = w.changes, w.pendingChange()
		}
		var tick <-chan time.Time
		if w.ticker != nil {
			tick = w.ticker.C
		}
		select {
		case <-w.quit:
			return
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			w.handleEvent(ev)
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			w.handleError(err)
		case <-w.timer.C:
			w.check()
		case <-tick:
			w.poll()
		case req := <-w.setc:
			req.reply <- w.setFiles(req.files)
		case out <- next:
			clear(w.pending)
			w.errs, w.dropped = nil, 0
		}
	}
}

func (w *Watcher) pendingChange() Change {
	var c Change
	for name := range w.pending {
		c.Files = append(c.Files, name)
	}
	slices.Sort(c.Files)
	errs := w.errs
	if w.dropped > 0 {
		errs = append(slices.Clip(errs), fmt.Errorf("watch: %d more errors not kept", w.dropped))
	}
	switch len(errs) {
	case 0:
	case 1:
		c.Err = errs[0]
	default:
		c.Err = errors.Join(errs...)
	}
	return c
}

func (w *Watcher) addErr(err error) {
	w.log.Warn("file watch problem", "err", err)
	if len(w.errs) >= maxPendingErrs {
		w.dropped++
		return
	}
	w.errs = append(w.errs, err)
}

func (w *Watcher) handleEvent(ev fsnotify.Event) {
	name := filepath.Clean(ev.Name)
	w.log.Debug("file event", "path", name, "op", ev.Op.String())
	if _, ok := w.dirs[name]; ok && ev.Op.Has(fsnotify.Remove|fsnotify.Rename|fsnotify.Create) {
		// The watched directory itself was removed, renamed away, or
		// replaced: its watch (tied to the old inode) is gone or useless.
		w.rewatch(name)
	}
	if _, ok := w.dirs[filepath.Dir(name)]; ok {
		w.dirty[filepath.Dir(name)] = true
	}
	w.arm()
}

func (w *Watcher) handleError(err error) {
	if errors.Is(err, fsnotify.ErrEventOverflow) {
		err = fmt.Errorf("watch: file events were lost, re-checking every file: %w", err)
	} else {
		err = fmt.Errorf("watch: file notification error, re-checking every file: %w", err)
	}
	w.addErr(err)
	for d := range w.dirs {
		w.dirty[d] = true
	}
	w.arm()
}

// rewatch drops the watch on directory d and adds it again; if d is gone it
// is marked lost, reported once, and polled for.
func (w *Watcher) rewatch(d string) {
	st := w.dirs[d]
	_ = w.fs.Remove(d) // may already be gone with the inode
	w.dirty[d] = true
	if err := w.addDir(d); err != nil {
		if !st.lost {
			st.lost = true
			w.addErr(fmt.Errorf("watch: directory %s: %w: %w", d, ErrDirGone, err))
			w.startPolling()
		}
		return
	}
	if st.lost {
		st.lost = false
		w.log.Info("watched directory is back", "dir", d)
	}
}

func (w *Watcher) addDir(d string) error {
	fi, err := os.Stat(d)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", d)
	}
	return w.fs.Add(d)
}

func (w *Watcher) anyLost() bool {
	for _, st := range w.dirs {
		if st.lost {
			return true
		}
	}
	return false
}

func (w *Watcher) startPolling() {
	if w.ticker == nil {
		w.ticker = time.NewTicker(w.opts.PollInterval)
	}
}

func (w *Watcher) poll() {
	lost := 0
	for d, st := range w.dirs {
		if !st.lost {
			continue
		}
		if err := w.addDir(d); err != nil {
			lost++
			continue
		}
		st.lost = false
		w.dirty[d] = true
		w.arm()
		w.log.Info("watched directory is back", "dir", d)
	}
	if lost == 0 && w.ticker != nil {
		w.ticker.Stop()
		w.ticker = nil
	}
}

// arm (re)starts the debounce timer, never past maxWaitFactor×Debounce
// after the first event of the burst.
func (w *Watcher) arm() {
	now := time.Now()
	if !w.armed {
		w.armed, w.burst = true, now
	}
	d := w.opts.Debounce
	if left := w.burst.Add(maxWaitFactor * w.opts.Debounce).Sub(now); left < d {
		d = max(left, 0)
	}
	w.timer.Reset(d)
}

// check fingerprints the files in dirty directories and adds those that
// changed to the pending Change.
func (w *Watcher) check() {
	w.armed = false
	var changed []string
	for _, f := range w.files {
		if !w.dirty[f.dir] {
			continue
		}
		fp := fingerprintOf(f.abs)
		if fp != f.fp {
			w.log.Debug("file changed", "path", f.name)
			f.fp = fp
			w.pending[f.name] = true
			changed = append(changed, f.name)
		}
	}
	clear(w.dirty)
	if w.opts.fired != nil && len(changed) > 0 {
		slices.Sort(changed)
		w.opts.fired <- changed
	}
}

// setFiles replaces the followed files; see SetFiles.
func (w *Watcher) setFiles(names []string) error {
	next := map[string]*file{}
	var order []*file
	for _, name := range names {
		if name == "" {
			return errors.New("watch: empty file path")
		}
		abs, err := filepath.Abs(name)
		if err != nil {
			return fmt.Errorf("watch: %s: %w", name, err)
		}
		if _, dup := next[abs]; dup {
			continue
		}
		f := &file{name: name, abs: abs, dir: filepath.Dir(abs)}
		if old, ok := w.files[abs]; ok {
			f.fp = old.fp
		}
		next[abs] = f
		order = append(order, f)
	}

	// Watch the new directories first, so nothing written after a file is
	// fingerprinted below goes unseen.
	var added []string
	for _, f := range order {
		if _, ok := w.dirs[f.dir]; ok || slices.Contains(added, f.dir) {
			continue
		}
		if err := w.addDir(f.dir); err != nil {
			for _, d := range added {
				_ = w.fs.Remove(d)
			}
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("watch: directory of %s does not exist: %w", f.name, err)
			}
			return fmt.Errorf("watch: watching directory of %s: %w", f.name, err)
		}
		added = append(added, f.dir)
	}
	for _, d := range added {
		w.dirs[d] = &dir{}
	}

	// Stop watching directories no longer needed.
	for d, st := range w.dirs {
		needed := false
		for _, f := range order {
			if f.dir == d {
				needed = true
				break
			}
		}
		if needed {
			continue
		}
		if !st.lost {
			if err := w.fs.Remove(d); err != nil && !errors.Is(err, fsnotify.ErrNonExistentWatch) {
				w.log.Debug("removing directory watch", "dir", d, "err", err)
			}
		}
		delete(w.dirs, d)
		delete(w.dirty, d)
	}
	if w.ticker != nil && !w.anyLost() {
		w.ticker.Stop()
		w.ticker = nil
	}

	// Fingerprint new files; forget pending reports of dropped ones.
	for abs, f := range next {
		if _, ok := w.files[abs]; !ok {
			f.fp = fingerprintOf(abs)
		}
	}
	for _, f := range w.files {
		n, ok := next[f.abs]
		if ok && n.name == f.name {
			continue
		}
		if w.pending[f.name] {
			delete(w.pending, f.name)
			if ok { // same file, spelled differently now
				w.pending[n.name] = true
			}
		}
	}
	w.files = next
	return nil
}

// fingerprint identifies a file's content, or its absence.
type fingerprint struct {
	missing bool
	err     string // the read error, other than not existing
	size    int64
	sum     uint64
}

// fingerprintSeed keys the content hash. The hash only tells one version of a file
// from the next, so it need not be cryptographic (the configuration's sha256 pins
// modules where it matters); maphash reads a plugin module of a few MiB in about a
// millisecond where SHA-256 took 20, which a reload waits for. The seed is random per
// process, so no file can be crafted to collide.
var fingerprintSeed = maphash.MakeSeed()

// fingerprintOf reads path, following symlinks. Only a regular file is read: opening a
// FIFO would block the Watcher until a writer came, and a device such as /dev/zero
// would never end; such a path's fingerprint is an error, which counts as a change when
// it appears and when it goes.
func fingerprintOf(path string) fingerprint {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fingerprint{missing: true}
	case err != nil:
		return fingerprint{err: err.Error()}
	case !fi.Mode().IsRegular():
		return fingerprint{err: fmt.Sprintf("%s is not a regular file (%v)", path, fi.Mode().Type())}
	}
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fingerprint{missing: true}
		}
		return fingerprint{err: err.Error()}
	}
	defer f.Close()
	var h maphash.Hash
	h.SetSeed(fingerprintSeed)
	n, err := io.Copy(&h, f)
	if err != nil {
		return fingerprint{err: err.Error()}
	}
	return fingerprint{size: n, sum: h.Sum64()}
}
