-- sql/monitor_bad_input.sql — bad input gets a clear ERROR with an errcode
-- and changes nothing.  Runs after monitor_two_nodes (nodes 1 and 2 exist).
SET pg_autopilot_monitor.node_timeout = '1h';
-- plpgsql context lines would tie the output to line numbers of the SQL functions.
\set SHOW_CONTEXT never

-- A second formation with one node, to call node_active across formations.
INSERT INTO pg_autopilot.formation (formation_id) VALUES ('other');
SELECT * FROM pg_autopilot.register_node('other', 'node1', '127.0.0.1', 5601, 7000000000000000002, 50, true);

-- Snapshot of everything the functions could change.
CREATE TEMP TABLE before_nodes AS SELECT * FROM pg_autopilot.node;
CREATE TEMP TABLE before_formations AS SELECT * FROM pg_autopilot.formation;
CREATE TEMP TABLE before_counts AS
    SELECT (SELECT count(*) FROM pg_autopilot.event) AS events,
           (SELECT last_value FROM pg_autopilot.node_node_id_seq) AS node_seq;
\set unchanged 'SELECT NOT EXISTS (SELECT * FROM pg_autopilot.node EXCEPT SELECT * FROM before_nodes) AND NOT EXISTS (SELECT * FROM before_nodes EXCEPT SELECT * FROM pg_autopilot.node) AND NOT EXISTS (SELECT * FROM pg_autopilot.formation EXCEPT SELECT * FROM before_formations) AND (SELECT count(*) FROM pg_autopilot.formation) = (SELECT count(*) FROM before_formations) AND (SELECT count(*) FROM pg_autopilot.event) = (SELECT events FROM before_counts) AND (SELECT last_value FROM pg_autopilot.node_node_id_seq) = (SELECT node_seq FROM before_counts) AS unchanged;'

-- register_node: unknown formation.
SELECT * FROM pg_autopilot.register_node('nope', 'node9', '127.0.0.1', 5509, 1, 50, true);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM pg_autopilot.register_node('de''fault', 'node9', '127.0.0.1', 5509, 1, 50, true);
\echo :LAST_ERROR_SQLSTATE
-- NULLs, each named.
SELECT * FROM pg_autopilot.register_node(NULL, 'node9', '127.0.0.1', 5509, 1, 50, true);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM pg_autopilot.register_node('default', NULL, '127.0.0.1', 5509, 1, 50, true);
SELECT * FROM pg_autopilot.register_node('default', 'node9', NULL, 5509, 1, 50, true);
SELECT * FROM pg_autopilot.register_node('default', 'node9', '127.0.0.1', NULL, 1, 50, true);
SELECT * FROM pg_autopilot.register_node('default', 'node9', '127.0.0.1', 5509, NULL, 50, true);
SELECT * FROM pg_autopilot.register_node('default', 'node9', '127.0.0.1', 5509, 1, NULL, true);
SELECT * FROM pg_autopilot.register_node('default', 'node9', '127.0.0.1', 5509, 1, 50, NULL);
\echo :LAST_ERROR_SQLSTATE
-- Absurd ports.
SELECT * FROM pg_autopilot.register_node('default', 'node9', '127.0.0.1', 0, 1, 50, true);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM pg_autopilot.register_node('default', 'node9', '127.0.0.1', 70000, 1, 50, true);
SELECT * FROM pg_autopilot.register_node('default', 'node9', '127.0.0.1', -5432, 1, 50, true);
-- Node names with quotes, newlines, spaces; empty; too long.
SELECT * FROM pg_autopilot.register_node('default', 'no''de9', '127.0.0.1', 5509, 1, 50, true);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM pg_autopilot.register_node('default', E'node9\nhost=evil', '127.0.0.1', 5509, 1, 50, true);
SELECT * FROM pg_autopilot.register_node('default', 'node 9', '127.0.0.1', 5509, 1, 50, true);
SELECT * FROM pg_autopilot.register_node('default', '', '127.0.0.1', 5509, 1, 50, true);
SELECT * FROM pg_autopilot.register_node('default', repeat('n', 64), '127.0.0.1', 5509, 1, 50, true);
-- Hosts with quotes, spaces, newlines, socket paths; empty.
SELECT * FROM pg_autopilot.register_node('default', 'node9', '127.0.0.1''', 5509, 1, 50, true);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM pg_autopilot.register_node('default', 'node9', 'host name', 5509, 1, 50, true);
SELECT * FROM pg_autopilot.register_node('default', 'node9', E'localhost\n', 5509, 1, 50, true);
SELECT * FROM pg_autopilot.register_node('default', 'node9', '/tmp', 5509, 1, 50, true);
SELECT * FROM pg_autopilot.register_node('default', 'node9', '', 5509, 1, 50, true);
-- Candidate priority out of 0..100.
SELECT * FROM pg_autopilot.register_node('default', 'node9', '127.0.0.1', 5509, 1, 101, true);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM pg_autopilot.register_node('default', 'node9', '127.0.0.1', 5509, 1, -1, true);
-- The address of another node.
SELECT * FROM pg_autopilot.register_node('default', 'node9', '127.0.0.1', 5501, 1, 50, true);
\echo :LAST_ERROR_SQLSTATE
:unchanged

-- node_active: unknown node, node of another formation, unknown formation.
SELECT * FROM pg_autopilot.node_active('default', 999, 'single', true, false, 1, '0/1', false, 50, true, NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM pg_autopilot.node_active('default', 3, 'single', true, false, 1, '0/1', false, 50, true, NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM pg_autopilot.node_active('other', 1, 'primary', true, false, 1, '0/1', false, 50, true, NULL);
SELECT * FROM pg_autopilot.node_active('nope', 1, 'primary', true, false, 1, '0/1', false, 50, true, NULL);
\echo :LAST_ERROR_SQLSTATE
-- Bad state labels.
SELECT * FROM pg_autopilot.node_active('default', 1, 'primaryy', true, false, 1, '0/1', false, 50, true, NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM pg_autopilot.node_active('default', 1, E'primary\n', true, false, 1, '0/1', false, 50, true, NULL);
SELECT * FROM pg_autopilot.node_active('default', 1, '', true, false, 1, '0/1', false, 50, true, NULL);
-- NULLs (last_error may be NULL, nothing else).
SELECT * FROM pg_autopilot.node_active(NULL, 1, 'primary', true, false, 1, '0/1', false, 50, true, NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM pg_autopilot.node_active('default', NULL, 'primary', true, false, 1, '0/1', false, 50, true, NULL);
SELECT * FROM pg_autopilot.node_active('default', 1, NULL, true, false, 1, '0/1', false, 50, true, NULL);
SELECT * FROM pg_autopilot.node_active('default', 1, 'primary', true, false, 1, NULL, false, 50, true, NULL);
SELECT * FROM pg_autopilot.node_active('default', 1, 'primary', true, false, 1, '0/1', false, 50, NULL, NULL);
-- Out of range.
SELECT * FROM pg_autopilot.node_active('default', 1, 'primary', true, false, 1, '0/1', false, 101, true, NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM pg_autopilot.node_active('default', 1, 'primary', true, false, -1, '0/1', false, 50, true, NULL);
SELECT * FROM pg_autopilot.node_active('default', 1, 'primary', true, false, 1, 'not an lsn', false, 50, true, NULL);
\echo :LAST_ERROR_SQLSTATE
:unchanged

-- record_health: unknown node, NULLs.
SELECT pg_autopilot.record_health(999, true);
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.record_health(NULL, true);
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.record_health(1, NULL);
:unchanged

-- Reports: unknown formation, NULLs, negative count.
SELECT * FROM pg_autopilot.show_state('nope');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM pg_autopilot.show_state(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM pg_autopilot.show_events('nope');
SELECT * FROM pg_autopilot.show_events('default', -1);
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.formation_uri('nope');
SELECT pg_autopilot.synchronous_standby_names('nope');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.synchronous_standby_names(NULL);
SELECT pg_autopilot.synchronous_standby_names('default', NULL);
\echo :LAST_ERROR_SQLSTATE
-- A group without nodes has no synchronous standbys.
SELECT pg_autopilot.synchronous_standby_names('default', 7) AS empty_group;
:unchanged

-- Privileges: the keepers' role may not touch the tables or the health verdicts.
SET ROLE autopilot_node;
SELECT count(*) FROM pg_autopilot.node;
\echo :LAST_ERROR_SQLSTATE
UPDATE pg_autopilot.node SET assigned_state = 'primary';
SELECT pg_autopilot.record_health(2, false);
\echo :LAST_ERROR_SQLSTATE
-- It may read the reports and re-register (idempotent: nothing changes).
SELECT node_id, node_name, current_state, assigned_state FROM pg_autopilot.show_state('other');
SELECT * FROM pg_autopilot.register_node('other', 'node1', '127.0.0.1', 5601, 7000000000000000002, 50, true);
RESET ROLE;
:unchanged
-- Other roles may only read the reports.
CREATE ROLE regress_autopilot_app;
SET ROLE regress_autopilot_app;
SELECT pg_autopilot.formation_uri('other');
SELECT * FROM pg_autopilot.register_node('other', 'node1', '127.0.0.1', 5601, 7000000000000000002, 50, true);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
DROP ROLE regress_autopilot_app;
:unchanged
