-- sql/monitor_boundary.sql — the C++/PostgreSQL error boundary: a C++
-- exception, an autopilot::Error and a PostgreSQL error, then proof that the
-- same backend still answers and the session is intact.
SELECT pg_backend_pid() AS pid_before \gset

SELECT pg_autopilot._debug_raise('cpp');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot._debug_raise('autopilot');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot._debug_raise('pg');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot._debug_raise('nonsense');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot._debug_raise(NULL);
\echo :LAST_ERROR_SQLSTATE

SELECT 1 AS still_answering;
SELECT pg_backend_pid() = :pid_before AS same_backend;

-- Inside a transaction: the error is caught by a savepoint and the transaction goes on.
BEGIN;
SAVEPOINT before_error;
SELECT pg_autopilot._debug_raise('cpp');
ROLLBACK TO SAVEPOINT before_error;
SELECT count(*) AS nodes FROM pg_autopilot.node;
COMMIT;

-- Many times, caught in PL/pgSQL: no leak of state, no crash.
DO $$
DECLARE
    kinds text[] := ARRAY['cpp', 'autopilot', 'pg'];
    caught int := 0;
BEGIN
    FOR i IN 1..3000 LOOP
        BEGIN
            PERFORM pg_autopilot._debug_raise(kinds[1 + i % 3]);
        EXCEPTION WHEN OTHERS THEN
            caught := caught + 1;
        END;
    END LOOP;
    RAISE NOTICE 'caught % errors', caught;
END
$$;

-- What each kind looks like to a PL/pgSQL handler.
DO $$
DECLARE
    k text;
    st text;
    msg text;
    det text;
    hnt text;
BEGIN
    FOREACH k IN ARRAY ARRAY['cpp', 'autopilot', 'pg'] LOOP
        BEGIN
            PERFORM pg_autopilot._debug_raise(k);
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL,
                                    hnt = PG_EXCEPTION_HINT;
            RAISE NOTICE '%: % % | % | %', k, st, msg, det, hnt;
        END;
    END LOOP;
END
$$;

SELECT pg_backend_pid() = :pid_before AS same_backend;

-- Not for everybody.
SET ROLE autopilot_node;
SELECT pg_autopilot._debug_raise('pg');
RESET ROLE;
