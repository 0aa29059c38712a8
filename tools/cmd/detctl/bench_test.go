package main

import "testing"

func TestParseRates(t *testing.T) {
	got, err := parseRates("max, 5,12.5,70%")
	if err != nil || len(got) != 4 || got[0] != (rate{}) || got[1].fps != 5 || got[2].fps != 12.5 || got[3].share != 0.7 {
		t.Fatalf("%+v %v", got, err)
	}
	for _, bad := range []string{"", "x", "-3", "0%", "500%", "1e9", "5,,6"} {
		if _, err := parseRates(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
