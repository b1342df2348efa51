// Command diskgate runs diskgated, the static C++ daemon of diskgate, as a
// gokrazy service.
//
// gokrazy only builds and supervises Go packages, so this package is the
// service and diskgated is an extra file in the root file system (see
// rpi/gokrazy/README.md). diskgate looks diskgated up and replaces itself with
// it (execve): same pid, same process group, so gokrazy's supervision, its
// SIGTERM on stop and the exit status reach diskgated directly. The command
// line (CommandLineFlags or flags.txt) and the environment (Environment or
// env.txt) are passed through unchanged.
//
// When diskgated cannot be run (missing, not executable, built for another
// architecture) diskgate says so on stderr and exits with status 125, which
// tells gokrazy not to supervise it: restarting would fail the same way
// every second.
package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

const (
	// binaryName is the file looked for next to this program.
	binaryName = "diskgated"
	// ExtraFilePath is where rpi/gokrazy/config.json.example puts diskgated
	// (an ExtraFilePaths entry, or _gokrazy/extrafiles_arm64.tar).
	ExtraFilePath = "/usr/local/bin/diskgated"
	// OverrideEnv names another path for diskgated; only that path is tried.
	OverrideEnv = "DISKGATED"
	// exitDontSupervise is gokrazy's "do not restart me".
	exitDontSupervise = 125
)

// Candidates returns where diskgated is looked for, in order: $DISKGATED
// alone when set, else next to this program (self), then ExtraFilePath.
func Candidates(self string, getenv func(string) string) []string {
	if override := getenv(OverrideEnv); override != "" {
		return []string{override}
	}
	var paths []string
	if self != "" {
		paths = append(paths, filepath.Join(filepath.Dir(self), binaryName))
	}
	if len(paths) == 0 || paths[0] != ExtraFilePath {
		paths = append(paths, ExtraFilePath)
	}
	return paths
}

// Find returns the first candidate that is an executable regular file and
// not this program itself (a package installed under the basename
// "diskgated" would otherwise exec itself forever). The error names every
// candidate and why it was passed over.
func Find(candidates []string, self string) (string, error) {
	var selfInfo fs.FileInfo
	if self != "" {
		selfInfo, _ = os.Stat(self)
	}
	var reasons []string
	for _, path := range candidates {
		info, err := os.Stat(path)
		switch {
		case err != nil && os.IsNotExist(err):
			reasons = append(reasons, path+": no such file")
		case err != nil:
			reasons = append(reasons, fmt.Sprintf("%s: %v", path, err))
		case !info.Mode().IsRegular():
			reasons = append(reasons, path+": not a regular file")
		case info.Mode().Perm()&0o111 == 0:
			reasons = append(reasons, fmt.Sprintf("%s: not executable (mode %04o)", path, info.Mode().Perm()))
		case selfInfo != nil && os.SameFile(info, selfInfo):
			reasons = append(reasons, path+": is this wrapper itself")
		default:
			return path, nil
		}
	}
	return "", fmt.Errorf("%s not found (%s)", binaryName, strings.Join(reasons, "; "))
}

// Argv is diskgated's argument vector: its own path as argv[0], then this
// program's arguments exactly as gokrazy gave them ("--" and everything
// after it included, for rest-server).
func Argv(binary string, args []string) []string {
	argv := make([]string, 0, 1+len(args))
	argv = append(argv, binary)
	return append(argv, args...)
}

// fail prints why diskgated cannot run and exits 125 (do not supervise).
func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "diskgate: "+format+"\n", args...)
	fmt.Fprintf(os.Stderr, "diskgate: exiting with status %d: gokrazy will not restart this service until it is started again (web interface) or the instance is updated\n", exitDontSupervise)
	os.Exit(exitDontSupervise)
}

func main() {
	self, err := os.Executable()
	if err != nil {
		self = ""
	}
	binary, err := Find(Candidates(self, os.Getenv), self)
	if err != nil {
		fail("%v; put the static arm64 diskgated at %s (an ExtraFilePaths entry, see rpi/gokrazy/README.md) or name it with %s=PATH in the environment",
			err, ExtraFilePath, OverrideEnv)
	}
	fmt.Fprintf(os.Stderr, "diskgate: running %s\n", binary)
	err = syscall.Exec(binary, Argv(binary, os.Args[1:]), os.Environ())
	// Only reached when execve failed.
	hint := ""
	switch err {
	case syscall.ENOEXEC:
		hint = " (built for another architecture? gokrazy on a Raspberry Pi needs the static aarch64 build: rpi/build-static aarch64)"
	case syscall.ENOENT:
		hint = " (a dynamically linked build? gokrazy has no dynamic loader or libraries: use rpi/build-static aarch64)"
	}
	fail("cannot run %s: %v%s", binary, err, hint)
}
