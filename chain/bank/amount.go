package bank

import (
	"fmt"
	"strconv"
	"strings"
)

// FormatAmount renders uPHA as PHA with up to six decimals, e.g. "1.5 PHA".
func FormatAmount(units uint64) string {
	whole, frac := units/UnitsPerPHA, units%UnitsPerPHA
	if frac == 0 {
		return fmt.Sprintf("%d %s", whole, Denom)
	}
	f := strings.TrimRight(fmt.Sprintf("%06d", frac), "0")
	return fmt.Sprintf("%d.%s %s", whole, f, Denom)
}

// ParseAmount reads an amount as a user writes it: "1.5" or "1.5PHA" is PHA
// (at most six decimals), "1500000upha" is base units. A leading minus is
// accepted so that the chain, not the client, judges the sign.
func ParseAmount(s string) (int64, error) {
	in := strings.TrimSpace(s)
	lower := strings.ToLower(in)
	neg := strings.HasPrefix(lower, "-")
	lower = strings.TrimPrefix(lower, "-")
	var units int64
	switch {
	case strings.HasSuffix(lower, "upha"):
		n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(lower, "upha")), 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("amount %q: want an integer number of uPHA", s)
		}
		units = n
	default:
		num := strings.TrimSpace(strings.TrimSuffix(lower, "pha"))
		whole, frac, _ := strings.Cut(num, ".")
		if whole == "" && frac == "" {
			return 0, fmt.Errorf("amount %q: want a number such as 1.5 or 1.5PHA or 1500000upha", s)
		}
		if len(frac) > 6 {
			return 0, fmt.Errorf("amount %q: PHA has at most 6 decimals", s)
		}
		w, err := parseDigits(whole)
		if err != nil {
			return 0, fmt.Errorf("amount %q: %v", s, err)
		}
		f, err := parseDigits(frac + strings.Repeat("0", 6-len(frac)))
		if err != nil {
			return 0, fmt.Errorf("amount %q: %v", s, err)
		}
		if w > (1<<63-1-f)/UnitsPerPHA {
			return 0, fmt.Errorf("amount %q is too large", s)
		}
		units = w*UnitsPerPHA + f
	}
	if neg {
		units = -units
	}
	return units, nil
}

func parseDigits(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%q is not a decimal number", s)
		}
	}
	return strconv.ParseInt(s, 10, 64)
}
