-- sql/monitor_failover.sql — automatic failover (primary_failed and the three
-- proofs of docs/failover.md), operator failover, perform_promotion and its
-- refusals, driven with synthetic reports and health verdicts.  Formation
-- 'fo'.  Time is simulated by backdating report_time / state_change_time.
SET pg_autopilot_monitor.node_timeout = '1h';
\set SHOW_CONTEXT never
INSERT INTO pg_autopilot.formation (formation_id) VALUES ('fo');

-- report(node, state, lsn, streaming, timeline): one keeper heartbeat; returns the goal.  A primary
-- reports as applied_sync_names the monitor's current names (its keeper was told and applied them).
-- Simulated time: after the call, a node that reports has been healthy for longer than node_timeout.
CREATE FUNCTION pg_temp.report(id bigint, state text, lsn pg_lsn, streaming bool, tl int DEFAULT 1)
RETURNS text LANGUAGE sql AS $$
    UPDATE pg_autopilot.node SET healthy_since = now() - interval '2 hours'
     WHERE node_id = id AND healthy_since IS NOT NULL AND report_time > now() - interval '1 hour';
    SELECT a.assigned_state
      FROM pg_autopilot.node n,
           pg_autopilot.node_active(n.formation_id, n.node_id, state, true,
                                    state NOT IN ('single', 'wait_primary', 'primary', 'apply_settings'),
                                    tl, lsn, streaming, n.candidate_priority, n.replication_quorum, NULL,
                                    CASE WHEN state IN ('single', 'wait_primary', 'primary', 'apply_settings')
                                         THEN pg_autopilot.synchronous_standby_names(n.formation_id, n.group_id) ELSE '' END) a
     WHERE n.node_id = id
$$;
-- fail(node): the node stopped reporting and its health check failed.
CREATE FUNCTION pg_temp.fail(id bigint) RETURNS void LANGUAGE sql AS $$
    UPDATE pg_autopilot.node SET report_time = report_time - interval '2 hours' WHERE node_id = id;
    SELECT pg_autopilot.record_health(id, false);
$$;
\set st 'SELECT node_id, node_name, current_state, assigned_state, reachable FROM pg_autopilot.show_state(''fo'') ORDER BY node_id;'
\set snap 'SET client_min_messages = warning; DROP TABLE IF EXISTS before_nodes, before_events; RESET client_min_messages; CREATE TEMP TABLE before_nodes AS SELECT * FROM pg_autopilot.node; CREATE TEMP TABLE before_events AS SELECT count(*) AS n FROM pg_autopilot.event;'
\set unchanged 'SELECT NOT EXISTS (SELECT * FROM pg_autopilot.node EXCEPT SELECT * FROM before_nodes) AND NOT EXISTS (SELECT * FROM before_nodes EXCEPT SELECT * FROM pg_autopilot.node) AND (SELECT count(*) FROM pg_autopilot.event) = (SELECT n FROM before_events) AS unchanged;'
-- mark / events: the rules that fired since the last mark.
CREATE TEMP TABLE mark (event_id bigint);
\set mark 'TRUNCATE mark; INSERT INTO mark SELECT max(event_id) FROM pg_autopilot.event;'
-- (the age in a demote-timeout promotion depends on the machine's speed: masked)
\set events 'SELECT node_name, reported_state, assigned_state, rule, regexp_replace(description, ''for [0-9]+ ms'', ''for N ms'') AS description FROM pg_autopilot.show_events(''fo'', 100) WHERE event_id > (SELECT event_id FROM mark) AND rule IS NOT NULL ORDER BY event_id;'

-- fo1 primary, fo2 secondary.
SELECT node_id AS p FROM pg_autopilot.register_node('fo', 'fo1', '127.0.0.1', 5801, 7000000000000000008, 50, true) \gset
SELECT pg_temp.report(:p, 'single', '0/4000000', false);
SELECT node_id AS c FROM pg_autopilot.register_node('fo', 'fo2', '127.0.0.1', 5802, 7000000000000000008, 50, true) \gset
SELECT pg_temp.report(:c, 'wait_standby', '0/0', false);
SELECT pg_temp.report(:p, 'wait_primary', '0/4000000', false);
SELECT pg_temp.report(:c, 'catchingup', '0/4000000', true);
SELECT pg_temp.report(:c, 'secondary', '0/4000000', true);
SELECT pg_temp.report(:p, 'primary', '0/4000000', false);
:st

------------------------------------------------------------------------------
-- 1. The primary dies (kill -9): sync proof.  Its last reported state was
-- primary (synchronous replication on) and the candidate stopped streaming:
-- fo1 can no longer acknowledge a commit, fo2 is promoted without waiting.
------------------------------------------------------------------------------
:mark
SELECT pg_temp.fail(:p);
:st
-- Nothing changes when the same verdict comes again, nor on a re-run.
SELECT pg_autopilot.record_health(:p, false);
SELECT pg_autopilot.proceed_groups() AS assignments;
-- fo2 stops replication and reports it.
SELECT pg_temp.report(:c, 'prepare_promotion', '0/4000100', false);
:st
SELECT pg_temp.report(:c, 'stop_replication', '0/4000200', false, 2);
:st
SELECT pg_temp.report(:c, 'wait_primary', '0/4000200', false, 2);
:st
-- fo1 restarts (its keeper finds it fenced), reports, is rewound and follows fo2.
SELECT * FROM pg_autopilot.node_active('fo', :p, 'primary', true, true, 1, '0/4000100', false, 50, true, NULL);
SELECT pg_autopilot.record_health(:p, true);
SELECT pg_temp.report(:p, 'demoted', '0/4000100', false, 1);
:st
SELECT pg_temp.report(:p, 'catchingup', '0/4000200', true, 2);
SELECT pg_temp.report(:p, 'secondary', '0/4000200', true, 2);
SELECT pg_temp.report(:c, 'primary', '0/4000200', false, 2);
:st
:events

------------------------------------------------------------------------------
-- 2. The primary (now fo2) fails while it was only wait_primary as far as
-- it reported: it may have acknowledged commits alone, so the monitor waits
-- for primary_demote_timeout (no proof), then promotes.
------------------------------------------------------------------------------
:mark
-- fo1 lost and back: fo2 is assigned primary but last reported wait_primary.
SELECT pg_autopilot.record_health(:p, false);
SELECT pg_temp.report(:c, 'wait_primary', '0/4000300', false, 2);
SELECT pg_autopilot.record_health(:p, true);
SELECT pg_temp.report(:p, 'catchingup', '0/4000300', true, 2);
SELECT pg_temp.report(:p, 'secondary', '0/4000300', true, 2);
:st
SELECT pg_temp.fail(:c);
SELECT pg_temp.report(:p, 'prepare_promotion', '0/4000300', false, 2);
:st
-- Not before the timeout, however often the rules run.
SELECT pg_autopilot.proceed_groups() AS assignments;
SELECT pg_temp.report(:p, 'prepare_promotion', '0/4000300', false, 2);
:st
-- Time passes: fo2 has been in demote_timeout longer than primary_demote_timeout.
SET pg_autopilot_monitor.primary_demote_timeout = '10s';
UPDATE pg_autopilot.node SET state_change_time = state_change_time - interval '11 seconds' WHERE node_id = :c;
SELECT pg_autopilot.proceed_groups() AS assignments;
:st
RESET pg_autopilot_monitor.primary_demote_timeout;
SELECT pg_temp.report(:p, 'stop_replication', '0/4000400', false, 3);
SELECT pg_temp.report(:p, 'wait_primary', '0/4000400', false, 3);
-- fo2 comes back, is rewound, follows.
SELECT pg_autopilot.record_health(:c, true);
SELECT pg_temp.report(:c, 'demoted', '0/4000300', false, 2);
SELECT pg_temp.report(:c, 'catchingup', '0/4000400', true, 3);
SELECT pg_temp.report(:c, 'secondary', '0/4000400', true, 3);
SELECT pg_temp.report(:p, 'primary', '0/4000400', false, 3);
:st
:events

------------------------------------------------------------------------------
-- 3. Not promoted automatically: the candidate lags behind the failed
-- primary by more than promote_lag_threshold, or has priority 0.
------------------------------------------------------------------------------
:mark
SET pg_autopilot_monitor.promote_lag_threshold = '1kB';
SELECT pg_temp.report(:p, 'primary', '0/4100000', false, 3);
SELECT pg_temp.report(:c, 'secondary', '0/4000400', true, 3);
SELECT pg_temp.fail(:p);
SELECT pg_autopilot.proceed_groups() AS assignments;
:st
-- fo1 is back (it reports again) before anything happened.
SELECT pg_temp.report(:p, 'primary', '0/4100000', false, 3);
RESET pg_autopilot_monitor.promote_lag_threshold;
SELECT pg_temp.report(:c, 'secondary', '0/4100000', true, 3);
UPDATE pg_autopilot.node SET candidate_priority = 0 WHERE node_id = :c;
SELECT pg_temp.fail(:p);
SELECT pg_autopilot.proceed_groups() AS assignments;
:st
SELECT pg_temp.report(:p, 'primary', '0/4100000', false, 3);
UPDATE pg_autopilot.node SET candidate_priority = 50 WHERE node_id = :c;
SELECT pg_autopilot.record_health(:p, true);
:st
:events

------------------------------------------------------------------------------
-- 4. Operator failover (the primary is healthy; the operator forces it).
------------------------------------------------------------------------------
:mark
SELECT pg_autopilot.perform_failover('fo');
:st
SELECT pg_temp.report(:p, 'demote_timeout', '0/4100000', false, 3);
SELECT pg_temp.report(:c, 'prepare_promotion', '0/4100000', false, 3);
:st
SELECT pg_temp.report(:c, 'stop_replication', '0/4100100', false, 4);
SELECT pg_temp.report(:c, 'wait_primary', '0/4100100', false, 4);
SELECT pg_temp.report(:p, 'demoted', '0/4100000', false, 3);
SELECT pg_temp.report(:p, 'catchingup', '0/4100100', true, 4);
SELECT pg_temp.report(:p, 'secondary', '0/4100100', true, 4);
SELECT pg_temp.report(:c, 'primary', '0/4100100', false, 4);
:st
:events

------------------------------------------------------------------------------
-- 5. perform_promotion: the primary (false, NOTICE), then fo1; refusals.
------------------------------------------------------------------------------
:mark
:snap
SELECT pg_autopilot.perform_promotion('fo2', 'fo');
:unchanged
-- Refused: unknown node, unknown formation, NULLs.
SELECT pg_autopilot.perform_promotion('fo9', 'fo');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.perform_promotion('fo1', 'nope');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.perform_promotion(NULL, 'fo');
\echo :LAST_ERROR_SQLSTATE
:unchanged
-- Refused: priority 0.
UPDATE pg_autopilot.node SET candidate_priority = 0 WHERE node_id = :p;
:snap
SELECT pg_autopilot.perform_promotion('fo1', 'fo');
\echo :LAST_ERROR_SQLSTATE
:unchanged
UPDATE pg_autopilot.node SET candidate_priority = 50 WHERE node_id = :p;
-- Refused: lagging (fo1 is 1 MB behind, the threshold is 1 kB).
SELECT pg_temp.report(:c, 'primary', '0/4200000', false, 4);
SET pg_autopilot_monitor.promote_lag_threshold = '1kB';
:st
:snap
SELECT pg_autopilot.perform_promotion('fo1', 'fo');
\echo :LAST_ERROR_SQLSTATE
:unchanged
RESET pg_autopilot_monitor.promote_lag_threshold;
-- Refused: not secondary (lost, then catching up again from far behind).
SELECT pg_autopilot.record_health(:p, false);
SELECT pg_temp.report(:c, 'wait_primary', '0/4200000', false, 4);
SELECT pg_temp.report(:p, 'catchingup', '0/1000000', true, 4);
:st
:snap
SELECT pg_autopilot.perform_promotion('fo1', 'fo');
\echo :LAST_ERROR_SQLSTATE
:unchanged
SELECT pg_temp.report(:p, 'catchingup', '0/4200000', true, 4);
SELECT pg_temp.report(:p, 'secondary', '0/4200000', true, 4);
SELECT pg_temp.report(:c, 'primary', '0/4200000', false, 4);
:st
-- The promotion of fo1: a switchover towards it.
SELECT pg_autopilot.perform_promotion('fo1', 'fo');
:st
-- Refused: two operations at once.
:snap
SELECT pg_autopilot.perform_promotion('fo1', 'fo');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.perform_failover('fo');
\echo :LAST_ERROR_SQLSTATE
:unchanged
SELECT pg_temp.report(:c, 'draining', '0/4200100', false, 4);
SELECT pg_temp.report(:p, 'secondary', '0/4200100', true, 4);
SELECT pg_temp.report(:p, 'prepare_promotion', '0/4200100', false, 4);
SELECT pg_temp.report(:c, 'demoted', '0/4200100', false, 4);
SELECT pg_temp.report(:p, 'stop_replication', '0/4200200', false, 5);
SELECT pg_temp.report(:p, 'wait_primary', '0/4200200', false, 5);
SELECT pg_temp.report(:c, 'catchingup', '0/4200200', true, 5);
SELECT pg_temp.report(:c, 'secondary', '0/4200200', true, 5);
SELECT pg_temp.report(:p, 'primary', '0/4200200', false, 5);
:st
:events

------------------------------------------------------------------------------
-- 6. A planned restart of the primary: its keeper announces the clean
-- shutdown (node_stopping); the health check marks it down, but it is not
-- failed over while pg_autopilot_monitor.restart_grace runs.  It reports
-- again: nothing happened.  Announced, but away longer than the grace:
-- failed over once the grace lapses.
------------------------------------------------------------------------------
:mark
SELECT pg_autopilot.node_stopping('fo', :p);
SELECT pg_autopilot.record_health(:p, false);
SELECT pg_autopilot.proceed_groups() AS assignments;
:st
SELECT pg_temp.report(:p, 'primary', '0/4200300', false, 5);
SELECT pg_autopilot.record_health(:p, true);
:st
SELECT pg_autopilot.node_stopping('fo', :p);
SELECT pg_autopilot.record_health(:p, false);
:st
-- Time passes beyond the grace (10 s by default).
UPDATE pg_autopilot.node SET stopping_time = stopping_time - interval '11 seconds' WHERE node_id = :p;
SELECT pg_autopilot.proceed_groups() AS assignments;
:st
SELECT node_name, reported_state, assigned_state, rule, description
  FROM pg_autopilot.show_events('fo', 100) WHERE event_id > (SELECT event_id FROM mark) ORDER BY event_id;
-- node_stopping: unknown node, node of another formation, NULLs; autopilot_node may call it.
SELECT pg_autopilot.node_stopping('fo', 999);
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.node_stopping('sw', :p);
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.node_stopping(NULL, :p);
\echo :LAST_ERROR_SQLSTATE
SELECT has_function_privilege('autopilot_node', 'pg_autopilot.node_stopping(text, bigint)', 'EXECUTE') AS keeper_may_call;
