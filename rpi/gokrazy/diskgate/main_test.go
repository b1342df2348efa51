package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func env(vars map[string]string) func(string) string {
	return func(name string) string { return vars[name] }
}

func writeFile(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"), mode); err != nil {
		t.Fatal(err)
	}
	// WriteFile's mode is filtered by the umask; set it exactly.
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func TestCandidatesNextToSelfThenExtraFile(t *testing.T) {
	got := Candidates("/user/diskgate", env(nil))
	want := []string{"/user/diskgated", "/usr/local/bin/diskgated"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Candidates = %q, want %q", got, want)
	}
}

func TestCandidatesWithoutSelf(t *testing.T) {
	got := Candidates("", env(nil))
	if want := []string{ExtraFilePath}; !reflect.DeepEqual(got, want) {
		t.Errorf("Candidates = %q, want %q", got, want)
	}
}

func TestCandidatesNoDuplicate(t *testing.T) {
	got := Candidates("/usr/local/bin/diskgate", env(nil))
	if want := []string{ExtraFilePath}; !reflect.DeepEqual(got, want) {
		t.Errorf("Candidates = %q, want %q", got, want)
	}
}

func TestCandidatesOverrideIsTheOnlyOne(t *testing.T) {
	got := Candidates("/user/diskgate", env(map[string]string{"DISKGATED": "/perm/bin/diskgated"}))
	if want := []string{"/perm/bin/diskgated"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Candidates = %q, want %q", got, want)
	}
}

func TestFindFirstExecutable(t *testing.T) {
	dir := t.TempDir()
	first, second := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	writeFile(t, first, 0o755)
	writeFile(t, second, 0o755)
	got, err := Find([]string{first, second}, "")
	if err != nil || got != first {
		t.Errorf("Find = %q, %v; want %q", got, err, first)
	}
}

func TestFindPassesOverWhatCannotRun(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	plain := filepath.Join(dir, "plain")
	writeFile(t, plain, 0o644)
	subdir := filepath.Join(dir, "subdir")
	if err := os.Mkdir(subdir, 0o755); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good")
	writeFile(t, good, 0o700)

	got, err := Find([]string{missing, plain, subdir, good}, "")
	if err != nil || got != good {
		t.Errorf("Find = %q, %v; want %q", got, err, good)
	}

	_, err = Find([]string{missing, plain, subdir}, "")
	if err == nil {
		t.Fatal("Find found something among a missing file, a 0644 file and a directory")
	}
	for _, want := range []string{
		"diskgated not found",
		missing + ": no such file",
		plain + ": not executable (mode 0644)",
		subdir + ": not a regular file",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func TestFindSkipsItself(t *testing.T) {
	dir := t.TempDir()
	self := filepath.Join(dir, "diskgated") // the wrapper installed as "diskgated"
	writeFile(t, self, 0o755)
	link := filepath.Join(dir, "link")
	if err := os.Link(self, link); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(dir, "target")
	writeFile(t, target, 0o755)

	got, err := Find([]string{self, link, target}, self)
	if err != nil || got != target {
		t.Errorf("Find = %q, %v; want %q (the wrapper and its hard link skipped)", got, err, target)
	}
	_, err = Find([]string{self}, self)
	if err == nil || !strings.Contains(err.Error(), "is this wrapper itself") {
		t.Errorf("Find of only itself: error %v, want one saying it is this wrapper", err)
	}
}

func TestArgvKeepsEverythingAfterTheBinary(t *testing.T) {
	args := []string{"--log-level", "debug", "--", "--path", "/perm/restic", "", "with space"}
	got := Argv("/usr/local/bin/diskgated", args)
	want := append([]string{"/usr/local/bin/diskgated"}, args...)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Argv = %q, want %q", got, want)
	}
	args[0] = "changed"
	if got[1] != "--log-level" {
		t.Error("Argv shares its backing array with the arguments")
	}
}

func TestArgvWithoutArguments(t *testing.T) {
	if got := Argv("/x/diskgated", nil); !reflect.DeepEqual(got, []string{"/x/diskgated"}) {
		t.Errorf("Argv = %q", got)
	}
}
