package ops

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
	"go.uber.org/zap"
)

// progress shows how far a pass is: a bar with rate and ETA on a terminal
// (Env.Terminal), a log line every Env.ProgressEvery otherwise (CI, a
// container's log). It counts rows examined.
type progress struct {
	e     *Env
	what  string // "encrypt public.users"
	total int64
	start time.Time
	done  atomic.Int64
	bar   *progressbar.ProgressBar
	stop  chan struct{}
	wg    sync.WaitGroup
}

func (e *Env) newProgress(what string, total int64) *progress {
	p := &progress{e: e, what: what, total: total, start: time.Now(), stop: make(chan struct{})}
	if e.Terminal {
		p.bar = progressbar.NewOptions64(max(total, 1),
			progressbar.OptionSetWriter(e.Err),
			progressbar.OptionSetDescription(what),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("rows"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionSetWidth(30),
			progressbar.OptionOnCompletion(func() { e.Err.Write([]byte("\n")) }),
		)
		return p
	}
	every := e.ProgressEvery
	if every <= 0 {
		every = 10 * time.Second
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.log("progress")
			}
		}
	}()
	return p
}

func (p *progress) add(n int) {
	d := p.done.Add(int64(n))
	if p.bar != nil {
		if d > p.total {
			// Rows written meanwhile (or a blocking pass): grow the bar.
			p.bar.ChangeMax64(d)
		}
		p.bar.Set64(d)
	}
}

func (p *progress) log(msg string) {
	d := p.done.Load()
	el := time.Since(p.start)
	rate := float64(d) / max(el.Seconds(), 1e-9)
	fields := []zap.Field{zap.String("what", p.what), zap.Int64("rows", d), zap.Int64("total", p.total),
		zap.Int("rows_per_s", int(rate)), zap.Duration("elapsed", el.Round(time.Millisecond))}
	if rate > 0 && p.total > d {
		fields = append(fields, zap.Duration("eta", time.Duration(float64(p.total-d)/rate*float64(time.Second)).Round(time.Second)))
	}
	p.e.Log.Info(msg, fields...)
}

// finish stops the display and returns the rows counted and the time taken.
func (p *progress) finish() (int64, time.Duration) {
	el := time.Since(p.start)
	if p.bar != nil {
		p.bar.Finish()
	} else {
		close(p.stop)
		p.wg.Wait()
	}
	return p.done.Load(), el
}
