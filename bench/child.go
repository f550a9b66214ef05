package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// benchChild is a child process of the integrations binary.
type benchChild struct {
	name      string
	cmd       *exec.Cmd
	logPath   string
	log       *os.File
	pprofAddr string
	done      chan struct{}
	waitErr   error
}

func startChild(binary, name string, args, env []string, dir string) (*benchChild, error) {
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create the %s log: %w", name, err)
	}
	cmd := exec.Command(binary, args...)
	cmd.Env, cmd.Dir, cmd.Stdout, cmd.Stderr = env, dir, logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start `integrations %s` from %s: %w (pass the integrations binary with --binary)", name, binary, err)
	}
	ch := &benchChild{name: name, cmd: cmd, logPath: logPath, log: logFile, done: make(chan struct{})}
	go func() {
		ch.waitErr = cmd.Wait()
		close(ch.done)
	}()
	return ch, nil
}

func (ch *benchChild) pid() int { return ch.cmd.Process.Pid }

func (ch *benchChild) exited() bool {
	select {
	case <-ch.done:
		return true
	default:
		return false
	}
}

// exitError says that the child exited, with the end of its log.
func (ch *benchChild) exitError() error {
	return fmt.Errorf("`integrations %s` exited (%v); the end of its log:\n%s", ch.name, ch.waitErr, tailFile(ch.logPath, 10))
}

// stop asks the child to stop (SIGTERM, which both commands handle) and
// kills it if it has not after benchStopTimeout.
func (ch *benchChild) stop() {
	defer ch.log.Close()
	if ch.exited() {
		return
	}
	_ = ch.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-ch.done:
	case <-time.After(benchStopTimeout):
		_ = ch.cmd.Process.Kill()
		<-ch.done
	}
}

// tailFile returns the last n lines of a file.
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
