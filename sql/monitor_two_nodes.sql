-- sql/monitor_two_nodes.sql — drive the keeper protocol with synthetic reports:
-- a first node, a second node joining, a standby lost and back (health check
-- and report timeout).  No real nodes.
-- Reports arrive within milliseconds here; never let a slow machine time them out.
SET pg_autopilot_monitor.node_timeout = '1h';

-- A node_state summary of the group, used after every step.
\set st 'SELECT node_id, node_name, current_state, assigned_state, reachable FROM pg_autopilot.show_state() ORDER BY node_id;'

-- node1 registers first: single.
SELECT * FROM pg_autopilot.register_node('default', 'node1', '127.0.0.1', 5501, 7000000000000000001, 50, true);
-- Registration is idempotent by name.
SELECT * FROM pg_autopilot.register_node('default', 'node1', '127.0.0.1', 5501, 7000000000000000001, 50, true);
SELECT * FROM pg_autopilot.node_active('default', 1, 'init', true, false, 1, '0/1000000', false, 50, true, NULL);
SELECT * FROM pg_autopilot.node_active('default', 1, 'single', true, false, 1, '0/1000100', false, 50, true, NULL);
:st
SELECT pg_autopilot.synchronous_standby_names() AS sync_names;

-- node2 registers: wait_standby; the settled single primary prepares replication (wait_primary).
SELECT * FROM pg_autopilot.register_node('default', 'node2', '127.0.0.1', 5502, 7000000000000000001, 50, true);
:st
SELECT * FROM pg_autopilot.node_active('default', 2, 'wait_standby', true, false, 1, '0/1000000', false, 50, true, NULL);
-- Nothing moves until node1 reports wait_primary.
:st
SELECT * FROM pg_autopilot.node_active('default', 1, 'wait_primary', true, false, 1, '0/1000200', false, 50, true, NULL);
:st
-- node2 cloned and streams: within the lag threshold it becomes secondary.
SELECT * FROM pg_autopilot.node_active('default', 2, 'catchingup', true, true, 1, '0/1000200', true, 50, true, NULL);
:st
-- node2 reports secondary: node1 turns synchronous replication on.
SELECT * FROM pg_autopilot.node_active('default', 2, 'secondary', true, true, 1, '0/1000200', true, 50, true, NULL);
:st
SELECT * FROM pg_autopilot.node_active('default', 1, 'primary', true, false, 1, '0/1000300', false, 50, true, NULL);

SELECT node_name, node_id, group_id, host, port, lsn, reachable, current_state, assigned_state,
       candidate_priority, replication_quorum
  FROM pg_autopilot.show_state();
SELECT pg_autopilot.synchronous_standby_names() AS sync_names;
SELECT pg_autopilot.synchronous_standby_names('default', 0) AS sync_names;
SELECT pg_autopilot.formation_uri();
SELECT event_id, node_id, node_name, reported_state, assigned_state, rule, description
  FROM pg_autopilot.show_events('default', 100) ORDER BY event_id;
SELECT event_id, node_name, rule FROM pg_autopilot.show_events() ORDER BY event_id DESC;

-- The health check finds node2 down: it stops counting for quorum and the
-- primary (number_sync_standbys = 0) disables synchronous replication.
SELECT pg_autopilot.record_health(2, false);
:st
SELECT pg_autopilot.synchronous_standby_names() AS sync_names;
-- The same verdict again changes nothing and writes no event.
SELECT count(*) AS events_before FROM pg_autopilot.event \gset
SELECT pg_autopilot.record_health(2, false);
SELECT count(*) = :events_before AS no_new_event FROM pg_autopilot.event;
SELECT * FROM pg_autopilot.node_active('default', 1, 'wait_primary', true, false, 1, '0/1000400', false, 50, true, NULL);
SELECT * FROM pg_autopilot.node_active('default', 2, 'secondary', true, true, 1, '0/1000400', true, 50, true, NULL);
:st

-- node2 is back: the health check succeeds; it catches up and counts again.
SELECT pg_autopilot.record_health(2, true);
SELECT * FROM pg_autopilot.node_active('default', 2, 'catchingup', true, true, 1, '0/1000400', true, 50, true, NULL);
SELECT * FROM pg_autopilot.node_active('default', 2, 'secondary', true, true, 1, '0/1000400', true, 50, true, NULL);
:st
SELECT * FROM pg_autopilot.node_active('default', 1, 'primary', true, false, 1, '0/1000500', false, 50, true, NULL);
SELECT pg_autopilot.synchronous_standby_names() AS sync_names;

-- node2 stops reporting (its keeper died): after node_timeout the primary's
-- next heartbeat finds it unhealthy.  Age its last report instead of waiting.
UPDATE pg_autopilot.node SET report_time = report_time - interval '2 hours' WHERE node_id = 2;
SELECT * FROM pg_autopilot.node_active('default', 1, 'primary', true, false, 1, '0/1000600', false, 50, true, NULL);
:st
SELECT * FROM pg_autopilot.node_active('default', 1, 'wait_primary', true, false, 1, '0/1000600', false, 50, true, NULL);
-- It reports again: back to secondary, then the primary to primary.
SELECT * FROM pg_autopilot.node_active('default', 2, 'catchingup', true, true, 1, '0/1000600', true, 50, true, NULL);
SELECT * FROM pg_autopilot.node_active('default', 2, 'secondary', true, true, 1, '0/1000600', true, 50, true, NULL);
SELECT * FROM pg_autopilot.node_active('default', 1, 'primary', true, false, 1, '0/1000600', false, 50, true, NULL);
:st

-- report_seq (docs/protocol.md): a node_active call its keeper gave up on may
-- run on the monitor after a newer one.  node2's newer report (seq 2000) is
-- recorded; the late one (seq 1000: catchingup, not streaming, an old LSN) and
-- one with the same seq change nothing at all: no column of any row (report
-- time, LSN, last_told_*), no event, no rule; they return the current goal.
SELECT assigned_state FROM pg_autopilot.node_active('default', 2, 'secondary', true, true, 1, '0/1000700', true, 50, true, NULL, '', 2000);
SELECT node_name, reported_state, reported_lsn, last_report_seq, last_told_state FROM pg_autopilot.node ORDER BY node_id;
SELECT count(*) AS events_before FROM pg_autopilot.event \gset
SELECT string_agg(n::text, ' ' ORDER BY node_id) AS rows_before FROM pg_autopilot.node n \gset
SELECT assigned_state FROM pg_autopilot.node_active('default', 2, 'catchingup', true, true, 1, '0/1000100', false, 50, true, NULL, '', 1000);
SELECT assigned_state FROM pg_autopilot.node_active('default', 2, 'catchingup', true, true, 1, '0/1000100', false, 50, true, NULL, '', 2000);
SELECT string_agg(n::text, ' ' ORDER BY node_id) = :'rows_before' AS rows_unchanged FROM pg_autopilot.node n;
SELECT count(*) = :events_before AS no_new_event FROM pg_autopilot.event;
-- More than an hour older: the node's clock stepped back; the report counts.
SELECT assigned_state FROM pg_autopilot.node_active('default', 2, 'secondary', true, true, 1, '0/1000800', true, 50, true, NULL, '', 2000 - 3600000001);
-- A keeper that sends no report_seq (NULL) is never stale and keeps the stored value.
SELECT assigned_state FROM pg_autopilot.node_active('default', 2, 'secondary', true, true, 1, '0/1000900', true, 50, true, NULL, '');
SELECT node_name, reported_state, reported_lsn, last_report_seq FROM pg_autopilot.node ORDER BY node_id;

SELECT event_id, node_name, reported_state, assigned_state, rule, description
  FROM pg_autopilot.show_events('default', 12) ORDER BY event_id;
