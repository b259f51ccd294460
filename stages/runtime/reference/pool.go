package reference

import (
	"runtime"
	"sync"
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
type workerPool struct {
	mu      sync.Mutex
	workers int
	jobs    chan poolJob
	wg      sync.WaitGroup
	once    sync.Once
}

func newWorkerPool(n int) *workerPool {
	if n <= 0 {
		n = runtime.NumCPU()
	}
	p := &workerPool{workers: n, jobs: make(chan poolJob, n)}
	for i := 1; i < n; i++ { // the caller's goroutine is worker 0
		go func() {
			for j := range p.jobs {
				j.t.runRange(j.w, j.lo, j.hi)
				p.wg.Done()
			}
		}()
	}
	return p
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
	p.wg.Add(chunks - 1)
	lo := step
	for c := 1; c < chunks; c++ {
		hi := min(lo+step, n)
		p.jobs <- poolJob{t: t, w: c, lo: lo, hi: hi}
		lo = hi
	}
	t.runRange(0, 0, min(step, n))
	p.wg.Wait()
}

// close stops the workers; the pool must not be used afterwards.
func (p *workerPool) close() {
	p.once.Do(func() { close(p.jobs) })
}
