//go:build darwin

package coreml

// The Objective-C surface this package touches, in one file so that every signature can be
// checked against its source at a glance: in purego the Go func type is the ABI, and a wrong
// one corrupts memory silently (purego's documentation of RegisterFunc).
//
// Core ML classes and selectors: Apple's Core ML documentation (and the headers' enum values for
// MLComputeUnits / MLMultiArrayDataType). Loading the frameworks and the autorelease pool
// functions: Apple's objc runtime documentation and purego's.
//
// Foundation/NSObject selectors are the long-stable
// Foundation API every Objective-C program uses: alloc, retain, release,
// instancesRespondToSelector:, +[NSString stringWithUTF8String:] and -UTF8String
// +[NSURL fileURLWithPath:], -[NSURL path],
// +[NSNumber numberWithLongLong:], -[NSNumber longLongValue], +[NSArray
// arrayWithObjects:count:], -[NSArray count], -[NSArray objectAtIndex:], +[NSDictionary
// dictionaryWithObjects:forKeys:count:], -[NSError domain], -[NSError code],
// -[NSError localizedDescription], -[NSException name],
// -[NSException reason], and the C function NSSetUncaughtExceptionHandler.

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/ebitengine/purego"
	"github.com/ebitengine/purego/objc"
	"golang.org/x/sys/unix"
)

// Framework paths (the frameworks are loaded before objc.GetClass can find their classes).
const (
	foundationPath = "/System/Library/Frameworks/Foundation.framework/Foundation"
	coreMLPath     = "/System/Library/Frameworks/CoreML.framework/CoreML"
	libobjcPath    = "/usr/lib/libobjc.A.dylib"
)

var (
	loadOnce sync.Once
	loadErr  error

	// objc_autoreleasePoolPush / Pop from libobjc (the runtime's own pool functions).
	autoreleasePoolPush func() uintptr
	autoreleasePoolPop  func(uintptr)

	// objc_msgSend under the typed signatures whose results are not objects, each
	// registered once by load. objc.Send[T] would register a fresh function (a
	// reflect.MakeFunc) on every call: about 30 per decoded token.
	sendBoolSEL func(objc.ID, objc.SEL, objc.SEL) bool // instancesRespondToSelector:
	sendInt     func(objc.ID, objc.SEL) int            // NSInteger: code, dataType
	sendUint    func(objc.ID, objc.SEL) uint           // NSUInteger: count
	sendInt64   func(objc.ID, objc.SEL) int64          // long long: longLongValue
	sendString  func(objc.ID, objc.SEL) string         // const char *: UTF8String

	msgSend uintptr // objc_msgSend, for signatures registered later (plan_darwin.go)

	// Classes.
	classMLModel                     objc.ID
	classMLModelConfiguration        objc.ID
	classMLMultiArray                objc.ID
	classMLFeatureValue              objc.ID
	classMLDictionaryFeatureProvider objc.ID
	classNSString                    objc.ID
	classNSURL                       objc.ID
	classNSNumber                    objc.ID
	classNSArray                     objc.ID
	classNSDictionary                objc.ID

	// Core ML selectors (Apple's Core ML documentation; first macOS release beside each).
	selCompileModelAtURL      = objc.RegisterName("compileModelAtURL:error:")                    // +[MLModel] → NSURL, macOS 10.13
	selModelWithContentsOfURL = objc.RegisterName("modelWithContentsOfURL:configuration:error:") // +[MLModel], macOS 10.14
	selNew                    = objc.RegisterName("new")                                         // [MLModelConfiguration new]
	selSetComputeUnits        = objc.RegisterName("setComputeUnits:")                            // NSInteger
	selSetFunctionName        = objc.RegisterName("setFunctionName:")                            // NSString, macOS 15
	selNewState               = objc.RegisterName("newState")                                    // → MLState, macOS 15
	selPredictUsingState      = objc.RegisterName("predictionFromFeatures:usingState:error:")    // macOS 15
	selInitWithDictionary     = objc.RegisterName("initWithDictionary:error:")                   // MLDictionaryFeatureProvider
	selFeatureValueWithArray  = objc.RegisterName("featureValueWithMultiArray:")                 // +[MLFeatureValue]
	selFeatureValueForName    = objc.RegisterName("featureValueForName:")                        // id<MLFeatureProvider>
	selMultiArrayValue        = objc.RegisterName("multiArrayValue")                             // MLFeatureValue
	selInitWithShape          = objc.RegisterName("initWithShape:dataType:error:")               // MLMultiArray
	selGetBytes               = objc.RegisterName("getBytesWithHandler:")                        // block (const void*, NSInteger), macOS 12.3
	selGetMutableBytes        = objc.RegisterName("getMutableBytesWithHandler:")                 // block (void*, NSInteger, NSArray*), macOS 12.3
	selShape                  = objc.RegisterName("shape")
	selStrides                = objc.RegisterName("strides")
	selDataType               = objc.RegisterName("dataType")

	// Foundation selectors (see the file comment).
	selAlloc                      = objc.RegisterName("alloc")
	selRetain                     = objc.RegisterName("retain")
	selRelease                    = objc.RegisterName("release")
	selInstancesRespondToSelector = objc.RegisterName("instancesRespondToSelector:")
	selStringWithUTF8String       = objc.RegisterName("stringWithUTF8String:")
	selUTF8String                 = objc.RegisterName("UTF8String")
	selFileURLWithPath            = objc.RegisterName("fileURLWithPath:")
	selPath                       = objc.RegisterName("path")
	selNumberWithLongLong         = objc.RegisterName("numberWithLongLong:")
	selLongLongValue              = objc.RegisterName("longLongValue")
	selArrayWithObjectsCount      = objc.RegisterName("arrayWithObjects:count:")
	selCount                      = objc.RegisterName("count")
	selObjectAtIndex              = objc.RegisterName("objectAtIndex:")
	selDictionaryWithObjects      = objc.RegisterName("dictionaryWithObjects:forKeys:count:")
	selDomain                     = objc.RegisterName("domain")
	selCode                       = objc.RegisterName("code")
	selLocalizedDescription       = objc.RegisterName("localizedDescription")
	selName                       = objc.RegisterName("name")
	selReason                     = objc.RegisterName("reason")
)

// loadFramework opens Foundation and Core ML once, resolves the classes, and checks that the
// calls this package needs exist, so an older macOS gets an error instead of an
// unrecognised-selector exception.
func loadFramework() error {
	loadOnce.Do(func() { loadErr = load() })
	return loadErr
}

func load() error {
	if v, err := unix.Sysctl("kern.osproductversion"); err == nil {
		if err := requireMacOS(v, macOSForPackages, "running lilims packages with Core ML (stateful multifunction ML Programs)"); err != nil {
			return err
		}
	}
	for _, p := range []string{foundationPath, coreMLPath} {
		if _, err := purego.Dlopen(p, purego.RTLD_NOW|purego.RTLD_GLOBAL); err != nil {
			return fmt.Errorf("coreml: load %s: %v (%w)", p, err, ErrUnavailable)
		}
	}
	libobjc, err := purego.Dlopen(libobjcPath, purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		return fmt.Errorf("coreml: load %s: %v (%w)", libobjcPath, err, ErrUnavailable)
	}
	msgSend, err = purego.Dlsym(libobjc, "objc_msgSend")
	if err != nil {
		return fmt.Errorf("coreml: objc_msgSend: %v (%w)", err, ErrUnavailable)
	}
	for _, fn := range []any{&sendBoolSEL, &sendInt, &sendUint, &sendInt64, &sendString} {
		purego.RegisterFunc(fn, msgSend)
	}
	// Dlsym first: RegisterLibFunc panics on a missing symbol.
	for name, fn := range map[string]any{
		"objc_autoreleasePoolPush": &autoreleasePoolPush,
		"objc_autoreleasePoolPop":  &autoreleasePoolPop,
	} {
		sym, err := purego.Dlsym(libobjc, name)
		if err != nil {
			return fmt.Errorf("coreml: %s: %v (%w)", name, err, ErrUnavailable)
		}
		purego.RegisterFunc(fn, sym)
	}
	if err := lookupClasses(map[string]*objc.ID{
		"MLModel":                     &classMLModel,
		"MLModelConfiguration":        &classMLModelConfiguration,
		"MLMultiArray":                &classMLMultiArray,
		"MLFeatureValue":              &classMLFeatureValue,
		"MLDictionaryFeatureProvider": &classMLDictionaryFeatureProvider,
		"NSString":                    &classNSString,
		"NSURL":                       &classNSURL,
		"NSNumber":                    &classNSNumber,
		"NSArray":                     &classNSArray,
		"NSDictionary":                &classNSDictionary,
	}, "lilims packages need macOS 15 or later"); err != nil {
		return err
	}
	// MLModelConfiguration.functionName, -[MLModel newState] and stateful prediction are
	// macOS 15 (Apple's documentation); the getBytes handlers macOS 12.3.
	for _, need := range []struct {
		class objc.ID
		sel   objc.SEL
		name  string
	}{
		{classMLModelConfiguration, selSetFunctionName, "-[MLModelConfiguration setFunctionName:]"},
		{classMLModel, selNewState, "-[MLModel newState]"},
		{classMLModel, selPredictUsingState, "-[MLModel predictionFromFeatures:usingState:error:]"},
		{classMLMultiArray, selGetBytes, "-[MLMultiArray getBytesWithHandler:]"},
		{classMLMultiArray, selGetMutableBytes, "-[MLMultiArray getMutableBytesWithHandler:]"},
	} {
		if !sendBoolSEL(need.class, selInstancesRespondToSelector, need.sel) {
			return fmt.Errorf("coreml: %s is missing: lilims packages need macOS 15 or later, for stateful multifunction ML Programs (%w)", need.name, ErrUnavailable)
		}
	}
	installExceptionHandler()
	return nil
}

// inFlight names the Objective-C call being made, for the uncaught-exception handler.
var inFlight atomic.Pointer[string]

// installExceptionHandler registers a Foundation uncaught-exception handler. Go cannot
// catch an Objective-C exception (no @try in Go), and after the handler
// returns the process still terminates; what the handler adds is the name of the call that
// raised, on stderr, where the plugin host logs it.
func installExceptionHandler() {
	foundation, err := purego.Dlopen(foundationPath, purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		return
	}
	sym, err := purego.Dlsym(foundation, "NSSetUncaughtExceptionHandler")
	if err != nil {
		return
	}
	var set func(uintptr)
	purego.RegisterFunc(&set, sym)
	// One callback for the life of the process (purego allows 2000, never freed).
	set(purego.NewCallback(func(exc objc.ID) {
		call := "an unknown call"
		if p := inFlight.Load(); p != nil {
			call = *p
		}
		fmt.Fprintf(os.Stderr, "coreml: uncaught Objective-C exception in %s: %s: %s\n",
			call, goString(exc.Send(selName)), goString(exc.Send(selReason)))
	}))
}

// call records name as the call in flight and returns a function that clears it.
func call(name string) func() {
	inFlight.Store(&name)
	return func() { inFlight.Store(nil) }
}

// withPool runs f on a locked OS thread inside an autorelease pool: Core ML's returns are
// mostly autoreleased, and goroutines are not Cocoa threads (a goroutine may move between OS
// threads, and a pool belongs to one).
func withPool(f func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	pool := autoreleasePoolPush()
	defer autoreleasePoolPop(pool)
	return f()
}

// release sends release to an owned object inside an autorelease pool on a locked OS
// thread: a dealloc may autorelease (Core ML's teardown of a model does), and outside a
// pool that leaks or, on a goroutine's thread, is not a Cocoa thread at all.
func release(id objc.ID) {
	if id == 0 {
		return
	}
	withPool(func() error {
		defer call("-[NSObject release]")()
		id.Send(selRelease)
		return nil
	})
}

// nsString returns an autoreleased NSString.
func nsString(s string) objc.ID {
	return classNSString.Send(selStringWithUTF8String, s)
}

// goString converts an NSString (nil: "").
func goString(s objc.ID) string {
	if s == 0 {
		return ""
	}
	return sendString(s, selUTF8String)
}

// fileURL returns an autoreleased file NSURL.
func fileURL(path string) objc.ID {
	return classNSURL.Send(selFileURLWithPath, nsString(path))
}

// nsNumbers returns an autoreleased NSArray<NSNumber*> of v.
func nsNumbers(v []int) objc.ID {
	ids := make([]objc.ID, len(v))
	for i, x := range v {
		ids[i] = classNSNumber.Send(selNumberWithLongLong, int64(x))
	}
	return nsArray(ids)
}

func nsArray(ids []objc.ID) objc.ID {
	if len(ids) == 0 {
		return classNSArray.Send(selArrayWithObjectsCount, unsafe.Pointer(nil), 0)
	}
	return classNSArray.Send(selArrayWithObjectsCount, unsafe.Pointer(&ids[0]), len(ids))
}

// maxRank bounds the NSArrays of dimensions read from Core ML: its tensors have rank ≤ 5
// (Core ML's ML Program tensors are at most rank 5).
const maxRank = 5

// goInts converts an NSArray<NSNumber*> such as -[MLMultiArray shape] or strides.
func goInts(arr objc.ID, what string) ([]int, error) {
	if arr == 0 {
		return nil, nilResult("-[MLMultiArray " + what + "]")
	}
	n := sendUint(arr, selCount)
	if n > maxRank {
		return nil, fmt.Errorf("coreml: MLMultiArray %s has %d entries, more than Core ML's rank limit of %d", what, n, maxRank)
	}
	out := make([]int, n)
	for i := range out {
		out[i] = int(sendInt64(arr.Send(selObjectAtIndex, uint(i)), selLongLongValue))
	}
	return out, nil
}

// errorOf translates the NSError left in an error: out-parameter, or reports a nil result
// when there is none.
func errorOf(callName string, nsErr objc.ID) *Error {
	if nsErr == 0 {
		return nilResult(callName)
	}
	return nsError(callName, goString(nsErr.Send(selDomain)), sendInt(nsErr, selCode),
		goString(nsErr.Send(selLocalizedDescription)))
}

// lookupClasses resolves each Objective-C class of classes by name into its variable; need
// says what a missing one means (the macOS it takes).
func lookupClasses(classes map[string]*objc.ID, need string) error {
	for name, dst := range classes {
		c := objc.GetClass(name)
		if c == 0 {
			return fmt.Errorf("coreml: class %s not found: %s (%w)", name, need, ErrUnavailable)
		}
		*dst = objc.ID(c)
	}
	return nil
}
