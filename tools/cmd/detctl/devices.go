package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/pkg/kafkax"
)

var devicesCommands = map[string]command{
	"ls": {"the edge fleet from its heartbeats: detctl devices ls [--group G] [--json]", runDevicesLs},
}

// fleet reduces heartbeats to the newest of each device; messages that are not a device status
// (wrong type, bad JSON, an id that breaks the grammar) are skipped and counted.
func fleet(values [][]byte) (map[string]contract.DeviceStatus, int) {
	out := map[string]contract.DeviceStatus{}
	bad := 0
	for _, v := range values {
		var st contract.DeviceStatus
		if err := json.Unmarshal(v, &st); err != nil || contract.CheckIDs("device", st.Device, "group", st.Group) != nil {
			bad++
			continue
		}
		if old, ok := out[st.Device]; !ok || st.At.After(old.At) {
			out[st.Device] = st
		}
	}
	return out, bad
}

func runDevicesLs(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("devices ls", flag.ContinueOnError)
	group := fs.String("group", "", "only this group")
	asJSON := fs.Bool("json", false, "print each device's last heartbeat as JSON")
	if _, err := parse(fs, args); err != nil {
		return 2
	}
	msgs, err := readWholeTopic(ctx, func(t kafkax.Topics) string { return t.Devices })
	if err != nil {
		fmt.Fprintln(stderr, "detctl devices ls:", err)
		return 1
	}
	var values [][]byte
	for _, m := range msgs {
		values = append(values, m.Value)
	}
	devs, bad := fleet(values)
	printFleet(stdout, devs, *group, *asJSON, time.Now())
	if bad > 0 {
		fmt.Fprintf(stderr, "detctl devices ls: %d messages on the devices topic were not device heartbeats (skipped)\n", bad)
	}
	return 0
}

func printFleet(w io.Writer, devs map[string]contract.DeviceStatus, group string, asJSON bool, now time.Time) {
	ids := make([]string, 0, len(devs))
	for id, d := range devs {
		if group == "" || d.Group == group {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	if asJSON {
		for _, id := range ids {
			b, _ := json.Marshal(devs[id])
			fmt.Fprintln(w, string(b))
		}
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tGROUP\tMODEL\tVERSION\tLAST SEEN\tSTATE\tFPS\tQUEUE\tDROPPED\tUPLINK\tCAMERAS\tARCH")
	for _, id := range ids {
		d := devs[id]
		up := d.Uplink
		if len(up) > 30 {
			up = up[:29] + "…"
		}
		streaming := 0
		for _, c := range d.Cameras {
			if c.State == "streaming" {
				streaming++
			}
		}
		version := d.Model.Version
		if version == "" {
			version = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s ago\t%s\t%.1f\t%d (%s)\t%d\t%s\t%d/%d\t%s\n", d.Device, d.Group, d.Model.Name, version,
			now.Sub(d.At).Round(time.Second), d.State, d.FPS, d.Queue.Depth, bytesIEC(d.Queue.Bytes), d.Queue.Dropped, up, streaming, len(d.Cameras), d.Arch)
	}
	tw.Flush()
}

func bytesIEC(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
