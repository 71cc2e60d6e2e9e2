-- Two roles: rpm_owner owns the schema and runs migrations; rpm_app is what Daphne and
-- the workers connect as, and may not change or remove audit rows.
-- As a superuser, once, on an empty database named rpm:
--   psql -v owner_password=... -v app_password=... -d rpm -f postgres-roles.sql
-- (or with RPM_OWNER_PASSWORD / RPM_APP_PASSWORD in the environment, as compose does).
\set ON_ERROR_STOP on
\if :{?owner_password}
\else
  \getenv owner_password RPM_OWNER_PASSWORD
\endif
\if :{?app_password}
\else
  \getenv app_password RPM_APP_PASSWORD
\endif

CREATE ROLE rpm_owner LOGIN PASSWORD :'owner_password';
CREATE ROLE rpm_app LOGIN PASSWORD :'app_password';
ALTER DATABASE rpm OWNER TO rpm_owner;
ALTER SCHEMA public OWNER TO rpm_owner;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT CONNECT ON DATABASE rpm TO rpm_app;
GRANT USAGE ON SCHEMA public TO rpm_app;

-- Every table and sequence a migration creates is usable by the app (no TRUNCATE,
-- no DDL). The audit table loses UPDATE and DELETE once it exists: see
-- postgres-audit-grants.sql, run after each `migrate`.
ALTER DEFAULT PRIVILEGES FOR ROLE rpm_owner IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO rpm_app;
ALTER DEFAULT PRIVILEGES FOR ROLE rpm_owner IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO rpm_app;
