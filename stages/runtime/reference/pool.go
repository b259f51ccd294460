package reference

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// rangeTask is work split over [0, n): runRange is called on disjoint sub-ranges from several
// goroutines, w (< the pool's workers) telling which chunk it is, so that a task can keep
// per-worker scratch. Kernels keep their task structs alive across calls, so handing one to
// the pool allocates nothing.
type rangeTask interface {
	runRange(w, lo, hi int)
}

// minParallelWork is the least work (in multiply-adds or exps) worth handing to another
// worker: a channel send and a wake-up cost a few microseconds.
const minParallelWork = 1 << 14

type poolJob struct {
	t         rangeTask
	w, lo, hi int
}

// workerPool runs rangeTasks on a fixed set of goroutines. One parallel call runs at a time
// (mu), which keeps a Model's buffers single-writer and avoids allocating a WaitGroup per call.
//
// A decode step makes a few hundred parallel calls, each some tens of microseconds long, with
// short serial ops in between. Parking a worker between calls and waking it through the
// scheduler costs about as much as the work, so an idle worker first polls for the next job
// for a while (spinPolls, yielding the processor between polls) and the caller polls for the
// end of its call the same way; only then do they block.
type workerPool struct {
	mu      sync.Mutex
	workers int
	jobs    chan poolJob
	pending atomic.Int32  // jobs of the running call not yet finished
	done    chan struct{} // signalled by the worker finishing the call's last job
	once    sync.Once
}

// spinPolls is how many times an idle goroutine polls before blocking (each poll yields the
// processor: some hundreds of microseconds in all).
const spinPolls = 2000

func newWorkerPool(n int) *workerPool {
	if n <= 0 {
		n = runtime.NumCPU()
	}
	p := &workerPool{workers: n, jobs: make(chan poolJob, n), done: make(chan struct{}, 1)}
	for i := 1; i < n; i++ { // the caller's goroutine is worker 0
		go func() {
			for {
				j, ok := p.next()
				if !ok {
					return
				}
				j.t.runRange(j.w, j.lo, j.hi)
				if p.pending.Add(-1) == 0 {
					select {
					case p.done <- struct{}{}:
					default:
					}
				}
			}
		}()
	}
	return p
}

// next returns the next job, polling before it blocks; ok is false once the pool is closed.
func (p *workerPool) next() (poolJob, bool) {
	for range spinPolls {
		select {
		case j, ok := <-p.jobs:
			return j, ok
		default:
			runtime.Gosched()
		}
	}
	j, ok := <-p.jobs
	return j, ok
}

// parallel runs t over [0, n) split into at most p.workers chunks of at least minChunk
// indices each; small problems run on the calling goroutine.
func (p *workerPool) parallel(n, minChunk int, t rangeTask) {
	if n <= 0 {
		return
	}
	chunks := p.workers
	if minChunk < 1 {
		minChunk = 1
	}
	if c := n / minChunk; c < chunks {
		chunks = c
	}
	if chunks <= 1 {
		t.runRange(0, 0, n)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	step := (n + chunks - 1) / chunks
	// Drain a completion signal left by an earlier call whose end the caller saw by polling.
	select {
	case <-p.done:
	default:
	}
	p.pending.Store(int32(chunks - 1))
	lo := step
	for c := 1; c < chunks; c++ {
		hi := min(lo+step, n)
		p.jobs <- poolJob{t: t, w: c, lo: lo, hi: hi}
		lo = hi
	}
	t.runRange(0, 0, min(step, n))
	for range spinPolls {
		if p.pending.Load() == 0 {
			return
		}
		runtime.Gosched()
	}
	for p.pending.Load() != 0 {
		<-p.done
	}
}

// close stops the workers; the pool must not be used afterwards.
func (p *workerPool) close() {
	p.once.Do(func() { close(p.jobs) })
}
