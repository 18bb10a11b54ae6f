// Package schedbench runs tokio's seven multi-threaded scheduler workloads
// (benches/rt_multi_threaded.rs) on Go's runtime, plus the idle-task memory
// figure of benches/idle_task_memory.rs, so docs/BENCHMARKS.md can set gort
// beside Go's scheduler on the same machine.
//
// Mapping: a task is a goroutine, a oneshot is a channel of capacity 1, a
// JoinHandle is a channel the goroutine closes when it returns, yield_now is
// runtime.Gosched, and the done signal is a channel. Go has no "outside" of
// its runtime: the remote workloads spawn from the benchmark goroutine, which
// is as remote as Go gets (its spawns go to its P's runnext/runq, not a
// global queue). GOMAXPROCS is the machine's cores (scripts/bench_go.sh).
//
// Run: bash scripts/bench_go.sh
package schedbench

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const (
	numSpawn = 10_000
	stallDur = 10 * time.Microsecond
)

// stall busy-waits 10 us, yielding the OS thread (sched_yield) as tokio's
// stall does with std::thread::yield_now. runtime.Gosched would be a
// different workload: it puts the goroutine on the global queue each time.
func stall() {
	start := time.Now()
	for time.Since(start) < stallDur {
		syscall.Syscall(syscall.SYS_SCHED_YIELD, 0, 0, 0)
	}
}

// spawn starts f in a goroutine and returns a channel closed when f returns:
// the JoinHandle of the Rust workloads.
func spawn(f func()) chan struct{} {
	done := make(chan struct{})
	go func() {
		f()
		close(done)
	}()
	return done
}

func BenchmarkSpawnManyLocal(b *testing.B) {
	done := make(chan struct{}, 1)
	var rem int64
	for i := 0; i < b.N; i++ {
		atomic.StoreInt64(&rem, numSpawn)
		for j := 0; j < numSpawn; j++ {
			go func() {
				if atomic.AddInt64(&rem, -1) == 0 {
					done <- struct{}{}
				}
			}()
		}
		<-done
	}
}

func remoteSpawns(b *testing.B, n int) {
	handles := make([]chan struct{}, 0, n)
	for i := 0; i < b.N; i++ {
		for j := 0; j < n; j++ {
			handles = append(handles, spawn(func() {}))
		}
		for _, h := range handles {
			<-h
		}
		handles = handles[:0]
	}
}

func BenchmarkSpawnManyRemoteIdle(b *testing.B) {
	remoteSpawns(b, numSpawn)
}

func BenchmarkSpawnManyRemoteBusy1(b *testing.B) {
	var stop int32
	workers := runtime.GOMAXPROCS(0)
	for i := 0; i < 2*workers; i++ {
		go func() {
			for atomic.LoadInt32(&stop) == 0 {
				runtime.Gosched()
				stall()
			}
		}()
	}
	b.ResetTimer()
	remoteSpawns(b, numSpawn)
	b.StopTimer()
	atomic.StoreInt32(&stop, 1)
}

func busy2Chain(stop *int32) {
	go func() {
		if atomic.LoadInt32(stop) == 0 {
			stall()
			busy2Chain(stop)
		}
	}()
}

func BenchmarkSpawnManyRemoteBusy2(b *testing.B) {
	var stop int32
	for i := 0; i < runtime.GOMAXPROCS(0); i++ {
		go busy2Chain(&stop)
	}
	b.ResetTimer()
	remoteSpawns(b, 1_000)
	b.StopTimer()
	atomic.StoreInt32(&stop, 1)
}

func BenchmarkYieldMany(b *testing.B) {
	const numYield = 1_000
	const tasks = 200
	done := make(chan struct{}, tasks)
	for i := 0; i < b.N; i++ {
		for t := 0; t < tasks; t++ {
			go func() {
				for y := 0; y < numYield; y++ {
					runtime.Gosched()
				}
				done <- struct{}{}
			}()
		}
		for t := 0; t < tasks; t++ {
			<-done
		}
	}
}

func BenchmarkPingPong(b *testing.B) {
	const numPings = 1_000
	done := make(chan struct{}, 1)
	var rem int64
	for i := 0; i < b.N; i++ {
		atomic.StoreInt64(&rem, numPings)
		go func() {
			for p := 0; p < numPings; p++ {
				go func() {
					ch1 := make(chan struct{}, 1)
					ch2 := make(chan struct{}, 1)
					go func() {
						<-ch1
						ch2 <- struct{}{}
					}()
					ch1 <- struct{}{}
					<-ch2
					if atomic.AddInt64(&rem, -1) == 0 {
						done <- struct{}{}
					}
				}()
			}
		}()
		<-done
	}
}

func chain(done chan struct{}, n int) {
	if n == 0 {
		done <- struct{}{}
	} else {
		go chain(done, n-1)
	}
}

func BenchmarkChainedSpawn(b *testing.B) {
	const iter = 1_000
	done := make(chan struct{}, 1)
	for i := 0; i < b.N; i++ {
		go chain(done, iter)
		<-done
	}
}

func rssBytes() int64 {
	statm, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		panic(err)
	}
	pages, err := strconv.ParseInt(strings.Fields(string(statm))[1], 10, 64)
	if err != nil {
		panic(err)
	}
	return pages * int64(os.Getpagesize())
}

// BenchmarkIdleGoroutineMemory reports resident bytes per goroutine blocked
// on a channel that never fires, 100,000 of them, as idle_task_memory does
// for the Rust runtimes. Run it with -benchtime=1x in a fresh process per
// sample (scripts/bench_go.sh): freed stacks are reused within a process.
func BenchmarkIdleGoroutineMemory(b *testing.B) {
	const tasks = 100_000
	ready := make(chan struct{}, tasks)
	never := make([]chan struct{}, 0, tasks+1)
	wait := func() {
		ch := make(chan struct{}, 1)
		never = append(never, ch)
		go func() {
			ready <- struct{}{}
			<-ch
		}()
	}
	wait() // warm up, as the Rust benchmark does
	<-ready
	before := rssBytes()
	for i := 0; i < tasks; i++ {
		wait()
	}
	for i := 0; i < tasks; i++ {
		<-ready
	}
	after := rssBytes()
	b.ReportMetric(float64(after-before)/tasks, "B/task")
	runtime.KeepAlive(never)
}
