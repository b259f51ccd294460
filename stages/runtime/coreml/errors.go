package coreml

import (
	"errors"
	"fmt"
)

// ErrUnavailable is wrapped by the errors of Open where Core ML cannot run lilims packages:
// on systems other than macOS, and on macOS older than 15. A caller choosing a runtime
// (runtime/auto) can test for it with errors.Is and fall back to the reference runtime.
var ErrUnavailable = errors.New("Core ML is unavailable")

// Error is a failed Core ML call: the NSError it returned through its error: out-parameter,
// or a nil result with no NSError at all.
type Error struct {
	Call        string // the Objective-C call, e.g. "+[MLModel modelWithContentsOfURL:configuration:error:]"
	Domain      string // NSError domain; empty when the call gave no NSError
	Code        int    // NSError code
	Description string // NSError localizedDescription
}

func (e *Error) Error() string {
	if e.Domain == "" && e.Code == 0 {
		return fmt.Sprintf("coreml: %s: %s", e.Call, e.Description)
	}
	return fmt.Sprintf("coreml: %s: %s (%s error %d)", e.Call, e.Description, e.Domain, e.Code)
}

// nsError builds the Go error for a call that reported an NSError. Apple documents
// localizedDescription as never empty, but a missing one must still leave a readable error.
func nsError(call, domain string, code int, description string) *Error {
	if description == "" {
		description = "no description"
	}
	return &Error{Call: call, Domain: domain, Code: code, Description: description}
}

// nilResult is the error for a call that returned nil and set no NSError: Core ML's
// convention is that this does not happen, so it is reported as such rather than trusted.
func nilResult(call string) *Error {
	return &Error{Call: call, Description: "returned nil without an NSError"}
}
