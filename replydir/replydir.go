// Package replydir reads what a job left in its CHATOPS_REPLY_DIR: the reply text
// (message.md), Block Kit blocks (blocks.json) and files to share in the job's thread.
//
// The directory belongs to the job, and the job is hostile: it may hold symbolic links to
// /etc/shadow, hard links to the executor's state, FIFOs that block a reader forever,
// sparse files of a terabyte, a million entries, names with control characters. So the
// directory is read with the *at calls on a descriptor opened with O_NOFOLLOW, only
// regular files owned by the job's uid with a single link are opened (O_NOFOLLOW,
// O_NONBLOCK, and checked again on the open descriptor), every read is bounded, and what
// is taken is copied into a private spool directory the job cannot reach before anyone
// looks at it. Memory stays bounded whatever the directory holds: the names of at most
// MaxEntries entries, message.md and blocks.json up to their limits, and copy buffers.
package replydir

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// The names with a meaning of their own.
const (
	MessageName = "message.md"
	BlocksName  = "blocks.json"
)

// MaxEntries bounds how many directory entries are looked at; the rest are counted only.
const MaxEntries = 4096

// MaxMessage is the most message.md may hold: Slack's limit on a message's text is 40,000
// characters, and a character is at least a byte.
const MaxMessage = 40000

// MaxBlocks is the most blocks.json may hold. Fifty blocks of 3,000 characters, with their
// JSON, fit well below it.
const MaxBlocks = 512 << 10

// Limits bound what is taken from the directory.
type Limits struct {
	MaxFiles int   // files to share, message.md and blocks.json not counted
	MaxFile  int64 // bytes of one file
	MaxTotal int64 // bytes of all shared files together
	// Binary allows files that are not UTF-8 text (they cannot be redacted).
	Binary bool
}

// Options say how to read a directory.
type Options struct {
	Limits
	// Owner is the uid every entry must belong to (the job's); negative: any.
	Owner int
	// Spool is a private directory (the job's state) where copies of the shared files go;
	// empty: the files are only checked (the job log's preview at the end of a stage).
	Spool string
	// Redact returns a writer that writes the redacted form of what it is given to w;
	// Close flushes it. Text files are shared as it writes them.
	Redact func(w io.Writer) io.WriteCloser
	// RedactName masks an entry's name before it is made safe (SafeName cuts a long name,
	// and a cut secret would no longer be found); nil: names as they are.
	RedactName func(string) string
}

// File is a file to share, copied into the spool.
type File struct {
	// Name is the entry's name, masked (Options.RedactName) and made safe to show and
	// upload: control characters, slashes and invalid UTF-8 replaced by '_', at most 80
	// bytes.
	Name string
	// Raw is the entry's name as the job wrote it.
	Raw string
	// Path is the spooled copy: redacted for text, as it was for binary.
	Path string
	Size int64
	Text bool
}

// Reply is what a directory held.
type Reply struct {
	// Message is message.md's text (valid UTF-8, not yet redacted); HasMessage says it
	// was there and usable.
	Message    string
	HasMessage bool
	// Blocks is blocks.json as the job wrote it, not yet validated; nil when absent or
	// unusable (Notes say why).
	Blocks []byte
	Files  []File
	// Notes say, one line each, what was not used and why; for the job log and the reply.
	Notes []string
}

// Read reads the reply directory dir. An error means the directory as a whole could not
// be read (missing, not a directory, someone else's); problems with entries are Notes.
// The caller removes the spooled copies (Close).
func Read(dir string, opt Options) (*Reply, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
			return nil, fmt.Errorf("%s is not a directory (a symbolic link or a file): not read", dir)
		}
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	d := os.NewFile(uintptr(fd), dir)
	defer d.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	if opt.Owner >= 0 && int(st.Uid) != opt.Owner {
		return nil, fmt.Errorf("%s belongs to uid %d, not the job's uid %d: not read", dir, st.Uid, opt.Owner)
	}
	names, more, err := listNames(d)
	if err != nil {
		return nil, err
	}
	r := &Reply{}
	if more > 0 {
		r.note("the reply directory holds more than %d entries: %d were not looked at", MaxEntries, more)
	}
	slices.Sort(names)
	var total int64
	skippedCount := 0
	for _, name := range names {
		shown := name
		if opt.RedactName != nil {
			shown = opt.RedactName(shown)
		}
		shown = SafeName(shown)
		switch name {
		case MessageName:
			if b, ok := r.readSmall(fd, name, MaxMessage, opt.Owner); ok {
				if !utf8.Valid(b) {
					r.note("%s was not used: it is not UTF-8 text", MessageName)
				} else {
					r.Message, r.HasMessage = string(b), true
				}
			}
			continue
		case BlocksName:
			if b, ok := r.readSmall(fd, name, MaxBlocks, opt.Owner); ok {
				r.Blocks = b
			}
			continue
		}
		if len(r.Files) >= opt.MaxFiles {
			skippedCount++
			continue
		}
		f, err := openEntry(fd, name, opt.Owner)
		if err != nil {
			r.note("%s was not shared: %v", shown, err)
			continue
		}
		size := f.size
		switch {
		case size == 0:
			r.note("%s was not shared: it is empty", shown)
		case size > opt.MaxFile:
			r.note("%s was not shared: %s is more than the %s one file may have (slack.reply_max_file_size)", shown, bytesText(size), bytesText(opt.MaxFile))
		case total+size > opt.MaxTotal:
			r.note("%s was not shared: with it the files would take more than %s together (slack.reply_max_total_size)", shown, bytesText(opt.MaxTotal))
		default:
			cf, why, err := spool(f.file, name, len(r.Files), size, opt)
			if err != nil {
				f.file.Close()
				r.Close()
				return nil, err
			}
			if why != "" {
				r.note("%s was not shared: %s", shown, why)
				break
			}
			cf.Name, cf.Raw = shown, name
			r.Files = append(r.Files, cf)
			total += cf.Size
		}
		f.file.Close()
	}
	if skippedCount > 0 {
		r.note("%d more files were not shared: at most %d files are (slack.reply_max_files)", skippedCount, opt.MaxFiles)
	}
	return r, nil
}

// Close removes the spooled copies.
func (r *Reply) Close() {
	for _, f := range r.Files {
		if f.Path != "" {
			os.Remove(f.Path)
		}
	}
}

func (r *Reply) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// readSmall reads a file with a meaning (message.md, blocks.json) whole, up to max bytes.
func (r *Reply) readSmall(dirfd int, name string, max int64, owner int) ([]byte, bool) {
	f, err := openEntry(dirfd, name, owner)
	if err != nil {
		r.note("%s was not used: %v", name, err)
		return nil, false
	}
	defer f.file.Close()
	if f.size > max {
		r.note("%s was not used: %s is more than the %s it may have", name, bytesText(f.size), bytesText(max))
		return nil, false
	}
	b, err := io.ReadAll(io.LimitReader(f.file, max+1))
	if err != nil {
		r.note("%s was not used: %v", name, err)
		return nil, false
	}
	if int64(len(b)) > max {
		r.note("%s was not used: it grew past the %s it may have while it was read", name, bytesText(max))
		return nil, false
	}
	return b, true
}

// listNames reads at most MaxEntries names from d, and counts the rest.
func listNames(d *os.File) ([]string, int, error) {
	var names []string
	more := 0
	for {
		batch, err := d.Readdirnames(256)
		for _, n := range batch {
			if len(names) < MaxEntries {
				names = append(names, n)
			} else {
				more++
			}
		}
		if errors.Is(err, io.EOF) || (err == nil && len(batch) == 0) {
			return names, more, nil
		}
		if err != nil {
			return nil, 0, fmt.Errorf("list %s: %w", d.Name(), err)
		}
	}
}

type entry struct {
	file *os.File
	size int64
}

// openEntry opens name in dirfd for reading when it is a regular file with one link, owned
// by owner (any when negative). It looks before it opens, so that nothing but a regular
// file is ever opened (a device's open can have effects, a FIFO's blocks), then checks
// the open descriptor is the very file it looked at.
func openEntry(dirfd int, name string, owner int) (entry, error) {
	var before unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &before, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return entry{}, fmt.Errorf("cannot be read: %w", err)
	}
	if err := plain(before, owner); err != nil {
		return entry{}, err
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return entry{}, fmt.Errorf("cannot be opened: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return entry{}, fmt.Errorf("cannot be read: %w", err)
	}
	if err := plain(st, owner); err != nil {
		unix.Close(fd)
		return entry{}, err
	}
	if st.Dev != before.Dev || st.Ino != before.Ino {
		unix.Close(fd)
		return entry{}, errors.New("it was replaced while it was read")
	}
	return entry{file: os.NewFile(uintptr(fd), name), size: st.Size}, nil
}

// plain says why st is not a file the executor may read on the job's behalf, or nil.
func plain(st unix.Stat_t, owner int) error {
	if t := st.Mode & unix.S_IFMT; t != unix.S_IFREG {
		return fmt.Errorf("it is %s, not a regular file", kind(t))
	}
	if st.Nlink != 1 {
		// A second name for the file may be outside the directory: the job could have
		// linked a file of the executor's that it cannot read itself.
		return fmt.Errorf("it has %d hard links (only a file with one is read: another could be outside the directory)", st.Nlink)
	}
	if owner >= 0 && int(st.Uid) != owner {
		return fmt.Errorf("it belongs to uid %d, not the job's uid %d", st.Uid, owner)
	}
	return nil
}

func kind(t uint32) string {
	switch t {
	case unix.S_IFLNK:
		return "a symbolic link"
	case unix.S_IFDIR:
		return "a directory"
	case unix.S_IFIFO:
		return "a FIFO"
	case unix.S_IFSOCK:
		return "a socket"
	case unix.S_IFCHR, unix.S_IFBLK:
		return "a device"
	}
	return "a special file"
}

// spool copies at most size bytes of f into the spool twice at once: as they are and
// through the redactor. Text (valid UTF-8 without NUL) keeps the redacted copy; binary
// keeps the raw one, and only when allowed and when no secret appears in it as it is
// (binary cannot be redacted, but a verbatim secret can still be found). why is set when
// the file is not shared.
func spool(f *os.File, name string, n int, size int64, opt Options) (File, string, error) {
	if opt.Spool == "" {
		return check(f, size, opt)
	}
	// The spool is the executor's (the job's private state): a copy a cleanup killed midway
	// left is overwritten.
	base := filepath.Join(opt.Spool, fmt.Sprintf("reply-file-%03d", n))
	raw, err := os.OpenFile(base+".raw", os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return File{}, "", fmt.Errorf("spool %s: %w", SafeName(name), err)
	}
	red, err := os.OpenFile(base+".txt", os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		raw.Close()
		os.Remove(raw.Name())
		return File{}, "", fmt.Errorf("spool %s: %w", SafeName(name), err)
	}
	defer raw.Close()
	defer red.Close()
	rawSum, redSum := sha256.New(), sha256.New()
	redactor := opt.Redact(io.MultiWriter(red, redSum))
	check := &textCheck{}
	// At most size bytes: a file that grows while it is read is cut where it was measured.
	copied, err := io.Copy(io.MultiWriter(raw, rawSum, redactor, check), io.LimitReader(f, size))
	if cerr := redactor.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(raw.Name())
		os.Remove(red.Name())
		return File{}, "", fmt.Errorf("spool %s: %w", SafeName(name), err)
	}
	if copied == 0 {
		os.Remove(raw.Name())
		os.Remove(red.Name())
		return File{}, "it is empty", nil
	}
	if check.text() {
		os.Remove(raw.Name())
		fi, err := red.Stat()
		if err != nil {
			return File{}, "", fmt.Errorf("spool %s: %w", SafeName(name), err)
		}
		return File{Path: red.Name(), Size: fi.Size(), Text: true}, "", nil
	}
	os.Remove(red.Name())
	why := ""
	switch {
	case !opt.Binary:
		why = `it is not UTF-8 text, and binary files are shared only with slack.reply_files = "all" (they cannot be redacted)`
	case !bytes.Equal(rawSum.Sum(nil), redSum.Sum(nil)):
		why = "it is binary and holds a masked value as it is: binary files cannot be redacted"
	}
	if why != "" {
		os.Remove(raw.Name())
		return File{}, why, nil
	}
	return File{Path: raw.Name(), Size: copied}, "", nil
}

// check is spool without copies (Options.Spool empty): the same verdict, nothing kept.
func check(f *os.File, size int64, opt Options) (File, string, error) {
	rawSum, redSum := sha256.New(), sha256.New()
	redactor := opt.Redact(redSum)
	tc := &textCheck{}
	copied, err := io.Copy(io.MultiWriter(rawSum, redactor, tc), io.LimitReader(f, size))
	if cerr := redactor.Close(); err == nil {
		err = cerr
	}
	switch {
	case err != nil:
		return File{}, "", fmt.Errorf("read %s: %w", SafeName(f.Name()), err)
	case copied == 0:
		return File{}, "it is empty", nil
	case tc.text():
		return File{Size: copied, Text: true}, "", nil
	case !opt.Binary:
		return File{}, `it is not UTF-8 text, and binary files are shared only with slack.reply_files = "all" (they cannot be redacted)`, nil
	case !bytes.Equal(rawSum.Sum(nil), redSum.Sum(nil)):
		return File{}, "it is binary and holds a masked value as it is: binary files cannot be redacted", nil
	}
	return File{Size: copied}, "", nil
}

// textCheck decides, as bytes go by, whether they are UTF-8 text without NUL bytes. It
// holds at most the three bytes of a rune cut between two writes.
type textCheck struct {
	carry  []byte
	binary bool
}

func (t *textCheck) Write(p []byte) (int, error) {
	if t.binary {
		return len(p), nil
	}
	b := p
	if len(t.carry) > 0 {
		b = append(t.carry, p...)
		t.carry = nil
	}
	if bytes.IndexByte(b, 0) >= 0 {
		t.binary = true
		return len(p), nil
	}
	// A rune may be cut at the end: hold back up to 3 bytes that could start one.
	cut := len(b)
	for i := len(b) - 1; i >= 0 && i >= len(b)-3; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				cut = i
			}
			break
		}
	}
	if !utf8.Valid(b[:cut]) {
		t.binary = true
		return len(p), nil
	}
	t.carry = append([]byte(nil), b[cut:]...)
	return len(p), nil
}

func (t *textCheck) text() bool { return !t.binary && len(t.carry) == 0 }

// SafeName is name fit to show and to upload: control characters, '/', '\\' and invalid
// UTF-8 become '_', it is at most 80 bytes long (cut at a rune), and never empty, "." or
// "..".
func SafeName(name string) string {
	var b strings.Builder
	for i, r := range name {
		if r == utf8.RuneError {
			if _, n := utf8.DecodeRuneInString(name[i:]); n <= 1 {
				r = '_'
			}
		}
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '/' || r == '\\' || r == 0x2028 || r == 0x2029 || r == 0x202e {
			r = '_'
		}
		if b.Len()+utf8.RuneLen(r) > 80 {
			break
		}
		b.WriteRune(r)
	}
	s := b.String()
	if s == "" || s == "." || s == ".." {
		return "file"
	}
	return s
}

func bytesText(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// Remove removes the reply directory dir and everything in it, never following a link
// (os.RemoveAll works with unlinkat and O_NOFOLLOW opens on Linux). The parent is the
// executor's (builds_dir), so the job cannot swap dir itself for a link.
func Remove(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove the reply directory: %w", err)
	}
	return nil
}
