package devstack

import (
	"os"

	"go.uber.org/zap/zapcore"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// SetProgramLogger gives controller-runtime a logger in the programs that
// drive a stack (cmd/devstack, test/bench, test/reliability): errors only, to
// stderr. Without one, controller-runtime's first log line is replaced by
// "log.SetLogger(...) was never called" and a goroutine dump.
func SetProgramLogger() {
	ctrllog.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))
}
