-- sql/monitor_switchover.sql — perform_switchover driven with synthetic
-- keeper reports, step by step as in docs/failover.md (there and back), and
-- its refusals, each followed by proof that nothing changed.  Formation 'sw'
-- keeps this file apart from the earlier tests.
SET pg_autopilot_monitor.node_timeout = '1h';
\set SHOW_CONTEXT never
INSERT INTO pg_autopilot.formation (formation_id) VALUES ('sw');

-- report(node, state, lsn, streaming, timeline): one keeper heartbeat; returns the goal.  A primary
-- reports as applied_sync_names the monitor's current names (its keeper was told and applied them).
-- in_recovery follows the state; priority and quorum stay what the monitor has.
CREATE FUNCTION pg_temp.report(id bigint, state text, lsn pg_lsn, streaming bool, tl int DEFAULT 1)
RETURNS text LANGUAGE sql AS $$
    SELECT a.assigned_state
      FROM pg_autopilot.node n,
           pg_autopilot.node_active(n.formation_id, n.node_id, state, true,
                                    state NOT IN ('single', 'wait_primary', 'primary', 'apply_settings'),
                                    tl, lsn, streaming, n.candidate_priority, n.replication_quorum, NULL,
                                    CASE WHEN state IN ('single', 'wait_primary', 'primary', 'apply_settings')
                                         THEN pg_autopilot.synchronous_standby_names(n.formation_id, n.group_id) ELSE '' END) a
     WHERE n.node_id = id
$$;
\set st 'SELECT node_id, node_name, current_state, assigned_state, reachable FROM pg_autopilot.show_state(''sw'') ORDER BY node_id;'
-- snap / unchanged: everything a refused request could have changed.
\set snap 'SET client_min_messages = warning; DROP TABLE IF EXISTS before_nodes, before_events; RESET client_min_messages; CREATE TEMP TABLE before_nodes AS SELECT * FROM pg_autopilot.node; CREATE TEMP TABLE before_events AS SELECT count(*) AS n FROM pg_autopilot.event;'
\set unchanged 'SELECT NOT EXISTS (SELECT * FROM pg_autopilot.node EXCEPT SELECT * FROM before_nodes) AND NOT EXISTS (SELECT * FROM before_nodes EXCEPT SELECT * FROM pg_autopilot.node) AND (SELECT count(*) FROM pg_autopilot.event) = (SELECT n FROM before_events) AS unchanged;'

-- Two nodes: sw1 primary, sw2 secondary.
SELECT node_id AS p FROM pg_autopilot.register_node('sw', 'sw1', '127.0.0.1', 5701, 7000000000000000007, 50, true) \gset
SELECT pg_temp.report(:p, 'single', '0/2000000', false);
SELECT node_id AS c FROM pg_autopilot.register_node('sw', 'sw2', '127.0.0.1', 5702, 7000000000000000007, 50, true) \gset
SELECT pg_temp.report(:c, 'wait_standby', '0/0', false);
SELECT pg_temp.report(:p, 'wait_primary', '0/2000000', false);
SELECT pg_temp.report(:c, 'catchingup', '0/2000000', true);
SELECT pg_temp.report(:c, 'secondary', '0/2000000', true);
SELECT pg_temp.report(:p, 'primary', '0/2000000', false);
:st
SELECT max(event_id) AS start_event FROM pg_autopilot.event \gset

-- Refused: a group without nodes, an unknown formation, NULLs.
:snap
SELECT pg_autopilot.perform_switchover('sw', 5);
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.perform_switchover('nope');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.perform_switchover(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.perform_switchover('sw', NULL);
\echo :LAST_ERROR_SQLSTATE
:unchanged

-- Refused: the only standby may never be promoted (candidate_priority 0).
UPDATE pg_autopilot.node SET candidate_priority = 0 WHERE node_id = :c;
:snap
SELECT pg_autopilot.perform_switchover('sw');
\echo :LAST_ERROR_SQLSTATE
:unchanged
UPDATE pg_autopilot.node SET candidate_priority = 50 WHERE node_id = :c;

-- The switchover.  The primary drains: its keeper shuts it down cleanly and
-- restarts it as a standby without upstream.
SELECT pg_autopilot.perform_switchover('sw');
:st
-- Refused: two operations at once.
:snap
SELECT pg_autopilot.perform_switchover('sw');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.perform_failover('sw');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.perform_promotion('sw2', 'sw');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.enable_maintenance('sw1', 'sw');
\echo :LAST_ERROR_SQLSTATE
:unchanged

-- sw1 reports draining (in recovery, lsn = end of its WAL).  sw2 has not
-- received all of it yet: nothing moves.
SELECT pg_temp.report(:p, 'draining', '0/2000100', false);
SELECT pg_temp.report(:c, 'secondary', '0/2000080', true);
:st
-- sw2 has all of sw1's WAL: sw1 is demoted, sw2 prepares its promotion.
SELECT pg_temp.report(:c, 'secondary', '0/2000100', true);
:st
-- sw2 stopped replication: it is promoted.
SELECT pg_temp.report(:c, 'prepare_promotion', '0/2000100', false);
:st
SELECT pg_temp.report(:p, 'demoted', '0/2000100', false);
-- sw2 promoted (timeline 2, checkpoint done): it opens for writes.
SELECT pg_temp.report(:c, 'stop_replication', '0/2000200', false, 2);
:st
-- sw2 runs as wait_primary: the old primary follows it.
SELECT pg_temp.report(:c, 'wait_primary', '0/2000300', false, 2);
:st
SELECT * FROM pg_autopilot.node_active('sw', :p, 'demoted', true, true, 1, '0/2000100', false, 50, true, NULL);
SELECT pg_temp.report(:p, 'catchingup', '0/2000300', true, 2);
SELECT pg_temp.report(:p, 'secondary', '0/2000300', true, 2);
SELECT pg_temp.report(:c, 'primary', '0/2000300', false, 2);
:st
SELECT pg_autopilot.synchronous_standby_names('sw') AS sync_names;
SELECT node_name, reported_state, assigned_state, rule
  FROM pg_autopilot.show_events('sw', 100) WHERE event_id > :start_event ORDER BY event_id;

-- And back: sw1 becomes the primary again.
SELECT max(event_id) AS start_event FROM pg_autopilot.event \gset
SELECT pg_autopilot.perform_switchover('sw');
SELECT pg_temp.report(:c, 'draining', '0/2000400', false, 2);
SELECT pg_temp.report(:p, 'secondary', '0/2000400', true, 2);
SELECT pg_temp.report(:p, 'prepare_promotion', '0/2000400', false, 2);
SELECT pg_temp.report(:c, 'demoted', '0/2000400', false, 2);
SELECT pg_temp.report(:p, 'stop_replication', '0/2000500', false, 3);
SELECT pg_temp.report(:p, 'wait_primary', '0/2000500', false, 3);
SELECT pg_temp.report(:c, 'demoted', '0/2000400', false, 2);
SELECT pg_temp.report(:c, 'catchingup', '0/2000500', true, 3);
SELECT pg_temp.report(:c, 'secondary', '0/2000500', true, 3);
SELECT pg_temp.report(:p, 'primary', '0/2000500', false, 3);
:st
SELECT node_name, reported_state, assigned_state, rule, description
  FROM pg_autopilot.show_events('sw', 100) WHERE event_id > :start_event AND rule IS NOT NULL ORDER BY event_id;

-- Refused: no healthy standby (sw2 is lost; the primary stops waiting for it).
SELECT pg_autopilot.record_health(:c, false);
SELECT pg_temp.report(:p, 'wait_primary', '0/2000600', false, 3);
:st
:snap
SELECT pg_autopilot.perform_switchover('sw');
\echo :LAST_ERROR_SQLSTATE
:unchanged
-- sw2 is back.
SELECT pg_autopilot.record_health(:c, true);
SELECT pg_temp.report(:c, 'catchingup', '0/2000600', true, 3);
SELECT pg_temp.report(:c, 'secondary', '0/2000600', true, 3);
SELECT pg_temp.report(:p, 'primary', '0/2000600', false, 3);
:st

-- Refused: a group with a single node.
INSERT INTO pg_autopilot.formation (formation_id) VALUES ('solo');
SELECT node_id AS s FROM pg_autopilot.register_node('solo', 'solo1', '127.0.0.1', 5709, 7000000000000000009, 50, true) \gset
SELECT pg_temp.report(:s, 'single', '0/3000000', false);
:snap
SELECT pg_autopilot.perform_switchover('solo');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.perform_failover('solo');
\echo :LAST_ERROR_SQLSTATE
:unchanged

-- Who may call: autopilot_node (the nodes' proxies) yes, other roles no.
CREATE ROLE regress_autopilot_op;
SET ROLE regress_autopilot_op;
SELECT pg_autopilot.perform_switchover('sw');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.proceed_groups();
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
DROP ROLE regress_autopilot_op;
SET ROLE autopilot_node;
SELECT pg_autopilot.perform_switchover('solo');
\echo :LAST_ERROR_SQLSTATE
-- No node proxy forwards these two: the keepers' role may not call them (42501).
SELECT pg_autopilot.perform_failover('solo', 0, true);
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.perform_promotion('x', 'solo');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
