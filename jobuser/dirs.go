package jobuser

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// The directories a job is handed are built with the *at calls on descriptors opened with
// O_NOFOLLOW, never by path: a job owns what is inside its directories and may have put a
// symbolic link anywhere in there, and a chown or chmod by path as root would follow it to
// whatever it points at.

// RootMode is builds_dir's and cache_dir's mode: a job may pass through to its own
// directory, but cannot list the others or create anything.
const RootMode = 0o711

// OpenRoot makes dir (builds_dir or cache_dir) if it is missing and opens it, after making
// sure it is a real directory, owned by the executor's user, with mode 0711.
func OpenRoot(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, RootMode); err != nil {
		return nil, err
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, notPlainDir(dir, err)
	}
	f := os.NewFile(uintptr(fd), dir)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	if int(st.Uid) != os.Geteuid() {
		f.Close()
		return nil, fmt.Errorf("%s is owned by uid %d, not by the executor's uid %d: whoever owns it can swap the jobs' directories", dir, st.Uid, os.Geteuid())
	}
	if st.Mode&0o7777 != RootMode {
		if err := unix.Fchmod(fd, RootMode); err != nil {
			f.Close()
			return nil, fmt.Errorf("chmod %04o %s: %w", RootMode, dir, err)
		}
	}
	return f, nil
}

// FreshDir creates name in parent as a new directory owned by uid:gid, mode 0700. A plain
// directory already there (left by a crashed run of the same job, or by a prepare the
// runner is retrying) is removed first; anything else there — a symbolic link, a file — is
// refused, since no one but the executor can write in parent.
func FreshDir(parent *os.File, name string, uid, gid int) error {
	if err := validName(name); err != nil {
		return err
	}
	path := filepath.Join(parent.Name(), name)
	pfd := int(parent.Fd())
	err := unix.Mkdirat(pfd, name, 0o700)
	if errors.Is(err, unix.EEXIST) {
		var st unix.Stat_t
		if err := unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return refused(path, st.Mode)
		}
		if err := os.RemoveAll(path); err != nil {
			return fmt.Errorf("remove the old %s: %w", path, err)
		}
		err = unix.Mkdirat(pfd, name, 0o700)
	}
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	fd, err := openDirAt(pfd, name)
	if err != nil {
		return notPlainDirAt(pfd, name, path, err)
	}
	defer unix.Close(fd)
	if err := unix.Fchown(fd, uid, gid); err != nil {
		return fmt.Errorf("give %s to uid %d: %w", path, uid, err)
	}
	if err := unix.Fchmod(fd, 0o700); err != nil {
		return fmt.Errorf("chmod 0700 %s: %w", path, err)
	}
	return nil
}

// maxDepth bounds how deep HandOver descends (each level holds a descriptor).
const maxDepth = 128

// HandOver gives the directory rel under root, and everything in it, to uid:gid; it makes
// the directory (0700) if missing, and the levels above it root-owned with mode 0711. An
// entry changes hands only when root owns it (HandOver or Park gave it to root), when
// prev(owner) holds (another job's uid: an earlier job of the project), or when uid owns it
// already; a file of any other owner, or a regular file with more than one hard link (the
// link could name a file outside), is left as it is and counted in skipped.
func HandOver(root *os.File, rel string, uid, gid int, prev func(uint32) bool) (skipped int, err error) {
	fd, path, err := walkTo(root, rel, true)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	allowed := func(owner uint32) bool { return owner == 0 || owner == uint32(uid) || prev(owner) }
	if !allowed(st.Uid) {
		return 0, fmt.Errorf("%s is owned by uid %d, which is neither root nor a job's uid: refusing to hand it to a job", path, st.Uid)
	}
	if err := unix.Fchown(fd, uid, gid); err != nil {
		return 0, fmt.Errorf("give %s to uid %d: %w", path, uid, err)
	}
	if err := unix.Fchmod(fd, 0o700); err != nil {
		return 0, fmt.Errorf("chmod 0700 %s: %w", path, err)
	}
	skipped, err = chownTree(fd, path, uid, gid, allowed, 0)
	return skipped, err
}

func chownTree(dirfd int, path string, uid, gid int, allowed func(uint32) bool, depth int) (int, error) {
	if depth >= maxDepth {
		return 0, fmt.Errorf("%s: more than %d levels deep", path, maxDepth)
	}
	names, err := readNames(dirfd, path)
	if err != nil {
		return 0, err
	}
	skipped := 0
	for _, name := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			continue // removed meanwhile
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			fd, err := openDirAt(dirfd, name)
			if err != nil {
				skipped++ // replaced by something else meanwhile
				continue
			}
			n, err := chownDir(fd, filepath.Join(path, name), uid, gid, allowed, depth)
			unix.Close(fd)
			skipped += n
			if err != nil {
				return skipped, err
			}
			continue
		}
		// Anything else is changed through an O_PATH descriptor of the entry itself: a
		// link is re-owned, not followed, and the checks below are about the very inode
		// that changes hands.
		fd, err := unix.Openat(dirfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			continue
		}
		if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT == unix.S_IFDIR ||
			!allowed(st.Uid) || (st.Mode&unix.S_IFMT == unix.S_IFREG && st.Nlink > 1) {
			unix.Close(fd)
			skipped++
			continue
		}
		err = unix.Fchownat(fd, "", uid, gid, unix.AT_EMPTY_PATH)
		unix.Close(fd)
		if err != nil {
			return skipped, fmt.Errorf("give %s to uid %d: %w", filepath.Join(path, name), uid, err)
		}
	}
	return skipped, nil
}

func chownDir(fd int, path string, uid, gid int, allowed func(uint32) bool, depth int) (int, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || !allowed(st.Uid) {
		return 1, nil
	}
	if err := unix.Fchown(fd, uid, gid); err != nil {
		return 0, fmt.Errorf("give %s to uid %d: %w", path, uid, err)
	}
	return chownTree(fd, path, uid, gid, allowed, depth+1)
}

// Park takes the directory rel under root back from uid — root-owned, mode 0700 — so that
// whoever gets the uid next cannot reach what it holds. A directory that uid does not own
// (a later job of the project has taken it over, or it is missing) is left alone.
func Park(root *os.File, rel string, uid int) error {
	fd, path, err := walkTo(root, rel, false)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if int(st.Uid) != uid {
		return nil
	}
	if err := unix.Fchown(fd, 0, 0); err != nil {
		return fmt.Errorf("take %s back from uid %d: %w", path, uid, err)
	}
	if err := unix.Fchmod(fd, 0o700); err != nil {
		return fmt.Errorf("chmod 0700 %s: %w", path, err)
	}
	return nil
}

// walkTo opens rel under root one level at a time without following links. With create,
// missing levels are made: the upper ones root-owned 0711 (the namespaces of projects), the
// last 0700. Upper levels must belong to the executor's user: a job-owned level could be
// re-pointed by that job.
func walkTo(root *os.File, rel string, create bool) (int, string, error) {
	parts := strings.Split(rel, "/")
	for _, p := range parts {
		if err := validName(p); err != nil {
			return -1, "", fmt.Errorf("path %q: %w", rel, err)
		}
	}
	fd, err := unix.Dup(int(root.Fd()))
	if err != nil {
		return -1, "", fmt.Errorf("%s: %w", root.Name(), err)
	}
	path := root.Name()
	for i, p := range parts {
		last := i == len(parts)-1
		path = filepath.Join(path, p)
		if create {
			mode := uint32(RootMode)
			if last {
				mode = 0o700
			}
			if err := unix.Mkdirat(fd, p, mode); err != nil && !errors.Is(err, unix.EEXIST) {
				unix.Close(fd)
				return -1, "", fmt.Errorf("create %s: %w", path, err)
			}
		}
		next, err := openDirAt(fd, p)
		if err != nil {
			err = notPlainDirAt(fd, p, path, err)
		}
		unix.Close(fd)
		if err != nil {
			return -1, "", err
		}
		fd = next
		if !last {
			var st unix.Stat_t
			if err := unix.Fstat(fd, &st); err != nil {
				unix.Close(fd)
				return -1, "", fmt.Errorf("%s: %w", path, err)
			}
			if int(st.Uid) != os.Geteuid() {
				unix.Close(fd)
				return -1, "", fmt.Errorf("%s is owned by uid %d, not by the executor: refusing to go through it", path, st.Uid)
			}
		}
	}
	return fd, path, nil
}

func openDirAt(dirfd int, name string) (int, error) {
	return unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
}

func readNames(dirfd int, path string) ([]string, error) {
	dup, err := unix.Dup(dirfd)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f := os.NewFile(uintptr(dup), path)
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", path, err)
	}
	slices.Sort(names)
	return names, nil
}

func validName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("%q is not a plain file name", name)
	}
	return nil
}

// notPlainDir names the real cause of a failed O_NOFOLLOW|O_DIRECTORY open: the kernel
// says ELOOP or ENOTDIR for a link, depending on the version.
func notPlainDir(path string, err error) error {
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
		var st unix.Stat_t
		if lerr := unix.Lstat(path, &st); lerr == nil {
			return refused(path, st.Mode)
		}
	}
	return fmt.Errorf("open %s: %w", path, err)
}

// notPlainDirAt is notPlainDir for name in the open directory dirfd.
func notPlainDirAt(dirfd int, name, path string, err error) error {
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
		var st unix.Stat_t
		if serr := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); serr == nil {
			return refused(path, st.Mode)
		}
	}
	return fmt.Errorf("open %s: %w", path, err)
}

func refused(path string, mode uint32) error {
	if mode&unix.S_IFMT == unix.S_IFLNK {
		return fmt.Errorf("%s is a symbolic link, not a directory: refusing to follow it", path)
	}
	return fmt.Errorf("%s is %s, not a directory: refusing to use it", path, kind(mode))
}

func kind(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFLNK:
		return "a symbolic link"
	case unix.S_IFREG:
		return "a file"
	case unix.S_IFSOCK:
		return "a socket"
	case unix.S_IFIFO:
		return "a fifo"
	}
	return "a special file"
}

// Reachable reports whether uid (with groups gids) can pass through every directory from
// / down to path, naming the first one that stops it. It reads mode bits only (no ACLs).
func Reachable(path string, uid uint32, gids []uint32) error {
	if uid == 0 {
		return nil
	}
	p := filepath.Clean(path)
	var chain []string
	for {
		chain = append(chain, p)
		if p == "/" {
			break
		}
		p = filepath.Dir(p)
	}
	slices.Reverse(chain)
	for _, d := range chain {
		var st unix.Stat_t
		if err := unix.Stat(d, &st); err != nil {
			if errors.Is(err, unix.ENOENT) {
				return nil // made later, by the executor, with the right mode
			}
			return fmt.Errorf("%s: %w", d, err)
		}
		var bit uint32
		switch {
		case st.Uid == uid:
			bit = 0o100
		case slices.Contains(gids, st.Gid):
			bit = 0o010
		default:
			bit = 0o001
		}
		if st.Mode&bit == 0 {
			return fmt.Errorf("uid %d cannot pass through %s (mode %04o, owner %d:%d): chmod o+x it, or move the directory", uid, d, st.Mode&0o7777, st.Uid, st.Gid)
		}
	}
	return nil
}
