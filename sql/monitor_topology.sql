-- sql/monitor_topology.sql — docs/elections.md on the monitor: formations
-- (create_formation, drop_formation, several on one monitor),
-- number_sync_standbys, candidate priority and replication quorum from the
-- monitor and from the nodes (one source of truth), a three-node group,
-- perform_failover(allow_data_loss), perform_promotion with two standbys,
-- drop_node; every refusal followed by proof that nothing changed.  Keepers
-- are simulated with node_active calls.  Formations 'tp' and 'tq'.
SET pg_autopilot_monitor.node_timeout = '1h';
\set SHOW_CONTEXT never

-- The simulated keepers' configuration: their GUCs candidate_priority and
-- replication_quorum (what a keeper reports), and the LSN each one reports.
CREATE TEMP TABLE guc (node_id bigint PRIMARY KEY, priority int, quorum bool, lsn pg_lsn DEFAULT '0/6000000');

-- report(node, state, streaming): one keeper heartbeat with its GUCs; like a
-- keeper, it writes the wanted values node_active returns into its GUCs and
-- a primary reports the monitor's current names as applied.  Returns the goal.
CREATE FUNCTION pg_temp.report(id bigint, state text, streaming bool DEFAULT NULL)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    r record;
    writable bool := state IN ('single', 'wait_primary', 'primary', 'apply_settings');
BEGIN
    SELECT a.* INTO r
      FROM pg_autopilot.node n JOIN guc g USING (node_id),
           pg_autopilot.node_active(n.formation_id, n.node_id, state, true, NOT writable, 1, g.lsn,
                                    coalesce(streaming, state IN ('catchingup', 'secondary', 'join_secondary')),
                                    g.priority, g.quorum, NULL,
                                    CASE WHEN writable THEN pg_autopilot.synchronous_standby_names(n.formation_id, n.group_id) ELSE '' END) a
     WHERE n.node_id = id;
    -- Simulated time: a node that reports has been healthy for longer than node_timeout.
    UPDATE pg_autopilot.node SET healthy_since = now() - interval '2 hours' WHERE node_id = id;
    IF r.wanted_candidate_priority IS NOT NULL THEN
        UPDATE guc SET priority = r.wanted_candidate_priority, quorum = r.wanted_replication_quorum
         WHERE node_id = id;
    END IF;
    RETURN r.assigned_state;
END
$$;

-- settle(formation): every keeper does what it is told and reports it, until
-- nothing moves (at most 30 rounds).  A dropped node's row goes away when it
-- reports dropped.
CREATE FUNCTION pg_temp.settle(f text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    before text;
    after text;
    n record;
BEGIN
    FOR i IN 1..30 LOOP
        SELECT string_agg(node_id || ':' || reported_state || '/' || assigned_state, ',' ORDER BY node_id)
          INTO before FROM pg_autopilot.node WHERE formation_id = f;
        FOR n IN SELECT node_id, assigned_state::text AS goal FROM pg_autopilot.node
                  WHERE formation_id = f ORDER BY node_id LOOP
            PERFORM pg_temp.report(n.node_id, n.goal);
        END LOOP;
        SELECT string_agg(node_id || ':' || reported_state || '/' || assigned_state, ',' ORDER BY node_id)
          INTO after FROM pg_autopilot.node WHERE formation_id = f;
        IF after IS NOT DISTINCT FROM before THEN
            RETURN;
        END IF;
    END LOOP;
    RAISE EXCEPTION 'formation % did not settle: %', f, after;
END
$$;

-- register(formation, name, port, priority, quorum): a keeper starts; returns its id.
CREATE FUNCTION pg_temp.register(f text, name text, port int, priority int DEFAULT 50, quorum bool DEFAULT true)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    id bigint;
BEGIN
    SELECT r.node_id INTO id FROM pg_autopilot.register_node(f, name, '127.0.0.1', port, 7000000000000000042,
                                                             priority, quorum) r;
    INSERT INTO guc (node_id, priority, quorum) VALUES (id, priority, quorum);
    RETURN id;
END
$$;

\set st 'SELECT s.node_name, s.current_state, s.assigned_state, s.candidate_priority AS prio, s.replication_quorum AS quorum, n.settings_pending AS pending, n.promotion_target AS target, n.allow_data_loss AS data_loss FROM pg_autopilot.show_state(''tp'') s JOIN pg_autopilot.node n USING (node_id) ORDER BY node_id;'
\set snap 'SET client_min_messages = warning; DROP TABLE IF EXISTS before_nodes, before_formations, before_events; RESET client_min_messages; CREATE TEMP TABLE before_nodes AS SELECT * FROM pg_autopilot.node; CREATE TEMP TABLE before_formations AS SELECT * FROM pg_autopilot.formation; CREATE TEMP TABLE before_events AS SELECT count(*) AS n FROM pg_autopilot.event;'
\set unchanged 'SELECT NOT EXISTS (SELECT * FROM pg_autopilot.node EXCEPT SELECT * FROM before_nodes) AND NOT EXISTS (SELECT * FROM before_nodes EXCEPT SELECT * FROM pg_autopilot.node) AND NOT EXISTS (SELECT * FROM pg_autopilot.formation EXCEPT SELECT * FROM before_formations) AND NOT EXISTS (SELECT * FROM before_formations EXCEPT SELECT * FROM pg_autopilot.formation) AND (SELECT count(*) FROM pg_autopilot.event) = (SELECT n FROM before_events) AS unchanged;'
CREATE TEMP TABLE mark (event_id bigint);
\set mark 'TRUNCATE mark; INSERT INTO mark SELECT max(event_id) FROM pg_autopilot.event;'
-- Decisions and operator changes since the last mark, in both formations (reports and health changes left out).
\set events 'SELECT formation_id AS f, node_name, assigned_state, rule, description FROM pg_autopilot.event WHERE event_id > (SELECT event_id FROM mark) AND rule IS NOT NULL AND formation_id IN (''tp'', ''tq'') ORDER BY event_id;'

------------------------------------------------------------------------------
-- 1. create_formation and its refusals.
------------------------------------------------------------------------------
:mark
SELECT pg_autopilot.create_formation('tp');
SELECT pg_autopilot.create_formation('tq', 1);
SELECT formation_id, number_sync_standbys FROM pg_autopilot.formation WHERE formation_id IN ('tp', 'tq')
 ORDER BY formation_id;
:events
:snap
SELECT pg_autopilot.create_formation('tp');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.create_formation('default');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.create_formation('');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.create_formation('Tp');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.create_formation('t-p');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.create_formation(E't\np');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.create_formation(repeat('t', 64));
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.create_formation('tr', -1);
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.create_formation(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.create_formation('tr', NULL);
\echo :LAST_ERROR_SQLSTATE
:unchanged

-- A new formation is empty; unknown formations are refused by every report.
SELECT count(*) AS nodes FROM pg_autopilot.show_state('tp');
SELECT pg_autopilot.formation_uri('tp') IS NULL AS no_uri;
SELECT pg_autopilot.synchronous_standby_names('tp', 0) AS sync_names;
SELECT * FROM pg_autopilot.show_state('nope');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.formation_uri('nope');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.synchronous_standby_names('nope', 0);
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.register_node('nope', 'tx1', '127.0.0.1', 6099, 1, 50, true);
\echo :LAST_ERROR_SQLSTATE

------------------------------------------------------------------------------
-- 2. Three nodes in formation tp, one in tq (a second formation works on its
-- own: its own group 0, URI and names).
------------------------------------------------------------------------------
:mark
SELECT pg_temp.register('tp', 'tp1', 6001) AS tp1 \gset
SELECT pg_temp.settle('tp');
SELECT pg_temp.register('tp', 'tp2', 6002) AS tp2 \gset
SELECT pg_temp.settle('tp');
SELECT pg_temp.register('tp', 'tp3', 6003) AS tp3 \gset
SELECT pg_temp.settle('tp');
SELECT pg_temp.register('tq', 'tq1', 6101) AS tq1 \gset
SELECT pg_temp.settle('tq');
:st
SELECT node_name, current_state, assigned_state FROM pg_autopilot.show_state('tq') ORDER BY node_id;
SELECT pg_autopilot.synchronous_standby_names('tp', 0) AS tp_names,
       pg_autopilot.synchronous_standby_names('tq', 0) AS tq_names;
SELECT pg_autopilot.formation_uri('tp') AS tp_uri;
SELECT pg_autopilot.formation_uri('tq') AS tq_uri;
-- What each tp node is told (the primary's names, every other node's slot).
SELECT s.node_name, a.assigned_state, a.primary_port, a.synchronous_standby_names, a.standby_slots,
       a.upstream_node_id, a.wanted_candidate_priority, a.wanted_replication_quorum
  FROM pg_autopilot.show_state('tp') s, guc g,
       pg_autopilot.node_active('tp', s.node_id, s.current_state::text, true, s.current_state <> 'primary', 1,
                                g.lsn, s.current_state <> 'primary', g.priority, g.quorum, NULL) a
 WHERE g.node_id = s.node_id ORDER BY s.node_id;

------------------------------------------------------------------------------
-- 3. set_number_sync_standbys: n + 1 quorum standbys are needed (tp has 2).
------------------------------------------------------------------------------
:snap
SELECT pg_autopilot.set_number_sync_standbys(2, 'tp');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.set_number_sync_standbys(-1, 'tp');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.set_number_sync_standbys(1, 'nope');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.set_number_sync_standbys(NULL, 'tp');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.set_number_sync_standbys(1, NULL);
\echo :LAST_ERROR_SQLSTATE
-- tq's only node has no standby: 1 is impossible there too.
SELECT pg_autopilot.set_number_sync_standbys(1, 'tq');
\echo :LAST_ERROR_SQLSTATE
:unchanged
:mark
SELECT pg_autopilot.set_number_sync_standbys(1, 'tp');
-- The same value again: nothing to do, no event.
SELECT pg_autopilot.set_number_sync_standbys(1, 'tp');
SELECT pg_temp.settle('tp');
SELECT formation_id, number_sync_standbys FROM pg_autopilot.formation WHERE formation_id IN ('tp', 'tq')
 ORDER BY formation_id;
SELECT pg_autopilot.synchronous_standby_names('tp', 0) AS tp_names;
:events

------------------------------------------------------------------------------
-- 4. set_candidate_priority: stored as the wanted value; node_active hands
-- it to the node until the node reports it (one source of truth: the node's
-- GUC).  A node's own GUC change is the truth when nothing is pending.
------------------------------------------------------------------------------
:snap
SELECT pg_autopilot.set_candidate_priority('tp3', 101, 'tp');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.set_candidate_priority('tp3', -1, 'tp');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.set_candidate_priority('tp9', 10, 'tp');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.set_candidate_priority('tq1', 10, 'tp');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.set_candidate_priority('tp3', 10, 'nope');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.set_candidate_priority(NULL, 10, 'tp');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.set_candidate_priority('tp3', NULL, 'tp');
\echo :LAST_ERROR_SQLSTATE
:unchanged
:mark
SELECT pg_autopilot.set_candidate_priority('tp3', 90, 'tp');
:st
-- Until its keeper applies it, the node still reports its old GUC: the wanted value stays.
SELECT a.assigned_state, a.wanted_candidate_priority, a.wanted_replication_quorum
  FROM pg_autopilot.node_active('tp', :tp3, 'secondary', true, true, 1, '0/6000000', true, 50, true, NULL, '') a;
SELECT candidate_priority, settings_pending FROM pg_autopilot.node WHERE node_id = :tp3;
-- The keeper writes it and reports it: settled, the flag is cleared.
SELECT pg_temp.settle('tp');
:st
SELECT g.priority AS tp3_guc FROM guc g WHERE node_id = :tp3;
SELECT pg_autopilot.synchronous_standby_names('tp', 0) AS tp_names;
-- tp2's operator changes its GUC (ALTER SYSTEM + reload): the monitor takes it.
UPDATE guc SET priority = 20 WHERE node_id = :tp2;
SELECT pg_temp.settle('tp');
:st
:events

------------------------------------------------------------------------------
-- 5. set_replication_quorum: refused while it would leave fewer than
-- number_sync_standbys + 1 quorum standbys.
------------------------------------------------------------------------------
:snap
SELECT pg_autopilot.set_replication_quorum('tp2', false, 'tp');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.set_replication_quorum('tp9', false, 'tp');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.set_replication_quorum('tp2', NULL, 'tp');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.set_replication_quorum('tp2', false, 'nope');
\echo :LAST_ERROR_SQLSTATE
:unchanged
:mark
SELECT pg_autopilot.set_number_sync_standbys(0, 'tp');
SELECT pg_autopilot.set_replication_quorum('tp2', false, 'tp');
SELECT pg_temp.settle('tp');
:st
SELECT pg_autopilot.synchronous_standby_names('tp', 0) AS tp_names;
-- Turning it on again is always accepted.
SELECT pg_autopilot.set_replication_quorum('tp2', true, 'tp');
SELECT pg_temp.settle('tp');
SELECT pg_autopilot.synchronous_standby_names('tp', 0) AS tp_names;
:events

------------------------------------------------------------------------------
-- 6. perform_failover(allow_data_loss => true) with two standbys: the mark
-- is on the old primary while it is demote_timeout, cleared afterwards.
------------------------------------------------------------------------------
:snap
SELECT pg_autopilot.perform_failover('tp', 0, NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.perform_failover('nope', 0, true);
\echo :LAST_ERROR_SQLSTATE
:unchanged
:mark
SELECT pg_autopilot.perform_failover('tp', 0, allow_data_loss => true);
SELECT node_name, assigned_state, allow_data_loss FROM pg_autopilot.node WHERE allow_data_loss ORDER BY node_id;
SELECT pg_temp.settle('tp');
:st
:events

------------------------------------------------------------------------------
-- 7. perform_promotion of a chosen standby: exactly that node, although
-- another one has a higher priority.
------------------------------------------------------------------------------
:mark
SELECT node_name AS low FROM pg_autopilot.node
 WHERE formation_id = 'tp' AND assigned_state = 'secondary' ORDER BY candidate_priority, node_id LIMIT 1 \gset
SELECT pg_autopilot.perform_promotion(:'low', 'tp');
SELECT node_name, promotion_target FROM pg_autopilot.node WHERE promotion_target ORDER BY node_id;
SELECT pg_temp.settle('tp');
:st
SELECT node_name = :'low' AS chosen_node_is_primary FROM pg_autopilot.node
 WHERE formation_id = 'tp' AND assigned_state = 'primary';
:events

------------------------------------------------------------------------------
-- 8. drop_node: refusals; a standby; number_sync_standbys lowered when the
-- drop leaves it impossible; the row goes when the keeper reports dropped.
------------------------------------------------------------------------------
:snap
SELECT pg_autopilot.drop_node('tp9', 'tp');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.drop_node('tp1', 'nope');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.drop_node(NULL, 'tp');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.drop_node('tp1', 'tp', NULL);
\echo :LAST_ERROR_SQLSTATE
:unchanged
:mark
SELECT pg_autopilot.set_number_sync_standbys(1, 'tp');
SELECT pg_temp.settle('tp');
SELECT node_name AS standby FROM pg_autopilot.node
 WHERE formation_id = 'tp' AND assigned_state = 'secondary' ORDER BY node_id LIMIT 1 \gset
SELECT pg_autopilot.drop_node(:'standby', 'tp');
SELECT node_name, assigned_state, wants_drop FROM pg_autopilot.node WHERE node_name = :'standby';
SELECT formation_id, number_sync_standbys FROM pg_autopilot.formation WHERE formation_id = 'tp';
SELECT pg_temp.settle('tp');
SELECT count(*) AS rows_left FROM pg_autopilot.node WHERE formation_id = 'tp' AND node_name = :'standby';
:st
SELECT pg_autopilot.synchronous_standby_names('tp', 0) AS tp_names;
SELECT pg_autopilot.formation_uri('tp') AS tp_uri;
:events

-- The primary: switched over first, then dropped.
:mark
SELECT node_name AS prim FROM pg_autopilot.node
 WHERE formation_id = 'tp' AND assigned_state = 'primary' \gset
SELECT pg_autopilot.drop_node(:'prim', 'tp');
SELECT pg_temp.settle('tp');
:st
:events

-- force: the row goes at once.
:mark
SELECT pg_autopilot.drop_node('tq1', 'tq', force => true);
SELECT count(*) AS tq_nodes FROM pg_autopilot.node WHERE formation_id = 'tq';
:events

------------------------------------------------------------------------------
-- 9. drop_formation.
------------------------------------------------------------------------------
:snap
SELECT pg_autopilot.drop_formation('default');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.drop_formation('tp');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.drop_formation('nope');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.drop_formation(NULL);
\echo :LAST_ERROR_SQLSTATE
:unchanged
SELECT pg_autopilot.drop_formation('tq');
SELECT formation_id FROM pg_autopilot.formation ORDER BY formation_id;
SELECT count(*) AS tq_events FROM pg_autopilot.event WHERE formation_id = 'tq';
SELECT pg_autopilot.show_state('tq');
\echo :LAST_ERROR_SQLSTATE

------------------------------------------------------------------------------
-- 10. The topology functions are for the DBA: autopilot_node (the keepers'
-- role) may not call them.
------------------------------------------------------------------------------
:snap
SET ROLE autopilot_node;
SELECT pg_autopilot.create_formation('tz');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.drop_formation('tp');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.set_number_sync_standbys(0, 'tp');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.set_candidate_priority('tp1', 10, 'tp');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.set_replication_quorum('tp1', true, 'tp');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.drop_node('tp1', 'tp');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
:unchanged
