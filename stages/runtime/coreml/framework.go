package coreml

// framework is the part of Core ML a Backend calls, one method per Core ML operation. The
// darwin files implement it over the Objective-C runtime; tests implement it with a fake,
// so that everything around the framework is exercised on every OS.
type framework interface {
	// compileModel compiles an .mlpackage into an .mlmodelc inside dir and returns the
	// compiled model's path (+[MLModel compileModelAtURL:error:]).
	compileModel(pkg, dir string) (string, error)
	// loadModel loads one function of a compiled model with the given compute units
	// (+[MLModel modelWithContentsOfURL:configuration:error:] with
	// MLModelConfiguration.functionName and computeUnits, Apple's MLModel documentation).
	loadModel(compiled, function string, units ComputeUnits) (model, error)
}

// model is one loaded function.
type model interface {
	// newState returns a zeroed KV state (-[MLModel newState], Apple's MLModel documentation).
	newState() (state, error)
	// predict runs the function on the named inputs with st and returns the named outputs
	// (-[MLModel predictionFromFeatures:usingState:error:], Apple's MLModel documentation). The returned arrays are
	// copies owned by Go, carrying Core ML's strides.
	predict(inputs []*namedArray, outputs []string, st state) (map[string]*Array, error)
	// release lets the framework free the model.
	release()
}

// state is a framework state object (MLState).
type state interface {
	release()
}

// namedArray is one input feature.
type namedArray struct {
	name string
	*Array
}
