package bench

import (
	"fmt"
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Plot writes a latency/throughput curve of steps to path (.png, .svg or .pdf): p50 and p99
// end-to-end latency against achieved frames per second, the knee marked.
func Plot(steps []Step, title, path string) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "throughput (frames/s)"
	p.Y.Label.Text = "end-to-end latency (ms)"
	positive := len(steps) > 0
	for _, s := range steps {
		positive = positive && s.P50 > 0 && s.P99 > 0
	}
	if positive { // latency spans tens of ms to seconds past the knee
		p.Y.Label.Text += ", log scale"
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	p.Add(plotter.NewGrid())
	for _, q := range []struct {
		name  string
		get   func(Step) float64
		color color.Color
	}{
		{"p50", func(s Step) float64 { return s.P50 }, color.RGBA{R: 31, G: 119, B: 180, A: 255}},
		{"p99", func(s Step) float64 { return s.P99 }, color.RGBA{R: 214, G: 39, B: 40, A: 255}},
	} {
		pts := make(plotter.XYs, len(steps))
		for i, s := range steps {
			pts[i] = plotter.XY{X: s.Achieved, Y: q.get(s)}
		}
		l, sc, err := plotter.NewLinePoints(pts)
		if err != nil {
			return fmt.Errorf("plotting %s: %w", q.name, err)
		}
		l.Color, sc.Color = q.color, q.color
		p.Add(l, sc)
		p.Legend.Add(q.name, l, sc)
	}
	for _, s := range steps {
		if s.Knee {
			k, err := plotter.NewScatter(plotter.XYs{{X: s.Achieved, Y: s.P99}})
			if err != nil {
				return err
			}
			k.Shape = draw.RingGlyph{}
			k.Radius = vg.Points(7)
			p.Add(k)
			p.Legend.Add(fmt.Sprintf("knee: %.0f frames/s", s.Achieved), k)
		}
	}
	p.Legend.Top = true
	p.Legend.Left = true
	if err := p.Save(7*vg.Inch, 4.5*vg.Inch, path); err != nil {
		return fmt.Errorf("writing the plot: %w", err)
	}
	return nil
}
