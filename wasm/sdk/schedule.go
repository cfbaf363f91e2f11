package sdk

// RefreshDelay says how long after obtaining a token to refresh it:
// margin before expiry, clamped to half the lifetime so short-lived tokens
// do not refresh in a loop, minus up to 10% of the margin of jitter
// (jitter in [0,1)) so tabs and visitors do not refresh in lockstep.
//
// It is measured from the server's expires_in on the local monotonic
// clock, never from the JWT's exp against a wall clock that may be
// skewed.
func RefreshDelay(expiresIn, margin Duration, jitter float64) Duration {
	if expiresIn <= 0 {
		return 0
	}
	if margin > expiresIn/2 {
		margin = expiresIn / 2
	}
	if margin < 0 {
		margin = 0
	}
	if jitter < 0 || jitter >= 1 {
		jitter = 0
	}
	return expiresIn - margin - Duration(float64(margin)*0.1*jitter)
}

// Backoff is the wait before retry number attempt (1-based): capped
// exponential with full jitter (rnd in [0,1)), never below 100 ms.
func Backoff(attempt int, base, limit Duration, rnd float64) Duration {
	d := base
	for i := 1; i < attempt && d < limit; i++ {
		d *= 2
	}
	if d > limit {
		d = limit
	}
	w := Duration(float64(d) * rnd)
	if w < 100*Millisecond {
		w = 100 * Millisecond
	}
	return w
}
