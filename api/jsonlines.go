package api

import (
	"bufio"
	"fmt"
	"os"
)

// lineFile is an append-only file of JSON lines rotated by size: when a
// write would take it past maxBytes, FILE becomes FILE.1 (FILE.1 becomes
// FILE.2, ... up to keep files; the oldest is removed) and a new FILE is
// started. Not safe for concurrent use: one goroutine owns it.
type lineFile struct {
	path     string
	maxBytes int64 // 0: never rotate
	keep     int
	f        *os.File
	w        *bufio.Writer
	size     int64
}

func openLineFile(path string, maxBytes int64, keep int) (*lineFile, error) {
	l := &lineFile{path: path, maxBytes: maxBytes, keep: max(keep, 1)}
	if err := l.open(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *lineFile) open() error {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	l.f, l.w, l.size = f, bufio.NewWriterSize(f, 64<<10), fi.Size()
	return nil
}

// write appends one line (line has no newline).
func (l *lineFile) write(line []byte) error {
	if l.maxBytes > 0 && l.size > 0 && l.size+int64(len(line))+1 > l.maxBytes {
		if err := l.rotate(); err != nil {
			return err
		}
	}
	l.w.Write(line)
	err := l.w.WriteByte('\n')
	l.size += int64(len(line)) + 1
	return err
}

// rotate closes FILE (flushed and synced) and shifts the old files.
func (l *lineFile) rotate() error {
	if err := l.sync(); err != nil {
		return err
	}
	if err := l.f.Close(); err != nil {
		return err
	}
	_ = os.Remove(fmt.Sprintf("%s.%d", l.path, l.keep))
	for i := l.keep - 1; i >= 1; i-- {
		_ = os.Rename(fmt.Sprintf("%s.%d", l.path, i), fmt.Sprintf("%s.%d", l.path, i+1))
	}
	if err := os.Rename(l.path, l.path+".1"); err != nil {
		return err
	}
	return l.open()
}

// flush hands buffered lines to the operating system.
func (l *lineFile) flush() error { return l.w.Flush() }

// sync flushes and fsyncs.
func (l *lineFile) sync() error {
	if err := l.w.Flush(); err != nil {
		return err
	}
	return l.f.Sync()
}

func (l *lineFile) close() error {
	err := l.sync()
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	return err
}
