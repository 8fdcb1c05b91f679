-- Rate counters of addresses gone quiet are deleted by age (see bump_rate_counter).
CREATE INDEX rate_counters_window_start ON rate_counters (window_start);
