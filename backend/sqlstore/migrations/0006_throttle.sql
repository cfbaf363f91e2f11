-- Failed secret guesses, shared by every process on this database
-- (backend/throttle). A key names what is counted: an account, a client
-- IP or IPv6 /64, an account from one IP; never the secret guessed.
-- window_start is when the key's current fixed window began, fails how
-- many failures it holds, blocked_until when the key's block ends (NULL
-- while it never reached its limit). Times are Unix milliseconds.
CREATE TABLE throttle (
  key TEXT PRIMARY KEY,
  window_start BIGINT NOT NULL,
  fails BIGINT NOT NULL,
  blocked_until BIGINT
);
