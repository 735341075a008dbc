-- sql/monitor_setup.sql — the extension installs; states and rules as golden output.
CREATE EXTENSION pg_autopilot_monitor;

-- The SQL enum and the compiled-in state list are generated from the same states.def.
SELECT array_agg(label ORDER BY n) = enum_range(NULL::pg_autopilot.node_state)::text[] AS states_match
  FROM pg_autopilot.node_states() WITH ORDINALITY AS s(label, n);
SELECT n, label FROM pg_autopilot.node_states() WITH ORDINALITY AS s(label, n) ORDER BY n;

-- The rule table, in evaluation order (golden file: any rule change shows here).
SELECT n, name, from_state, to_state, description
  FROM pg_autopilot.group_rules() WITH ORDINALITY AS r(name, from_state, to_state, description, n)
 ORDER BY n;

SELECT formation_id, number_sync_standbys FROM pg_autopilot.formation ORDER BY formation_id;

SELECT rolname, rolcanlogin, rolsuper FROM pg_roles WHERE rolname = 'autopilot_node';

-- Privileges: keepers may call register_node, node_active, node_stopping and the operator
-- functions the nodes' proxies forward (perform_switchover, enable/disable_maintenance);
-- perform_failover, perform_promotion, proceed_groups and record_health are superuser-only;
-- reports are public.
SELECT p.oid::regprocedure AS function, p.prosecdef AS security_definer,
       has_function_privilege('autopilot_node', p.oid, 'EXECUTE') AS autopilot_node,
       has_function_privilege('public', p.oid, 'EXECUTE') AS public
  FROM pg_proc p
 WHERE p.pronamespace = 'pg_autopilot'::regnamespace
 ORDER BY p.proname, p.oid::regprocedure::text;
SELECT c.relname,
       has_table_privilege('autopilot_node', c.oid, 'SELECT') AS autopilot_node_select,
       has_table_privilege('public', c.oid, 'SELECT') AS public_select
  FROM pg_class c
 WHERE c.relnamespace = 'pg_autopilot'::regnamespace AND c.relkind = 'r'
 ORDER BY c.relname;
