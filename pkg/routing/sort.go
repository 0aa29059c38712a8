package routing

import "sort"

func sortStats(s []Stats) {
	sort.Slice(s, func(i, j int) bool {
		if s[i].Version != s[j].Version {
			return s[i].Version < s[j].Version
		}
		return s[i].Arm < s[j].Arm
	})
}
