-- The exporter's role: it reads the contract's relations in {ent} and nothing else.
-- The views run with their owner's rights on the platform's tables, so this role needs
-- no right on them. It can log in only if init-source was given a password; otherwise
-- grant it to a login role (GRANT {role} TO ...) or ALTER ROLE {role} LOGIN PASSWORD ...

DO $$
BEGIN
    CREATE ROLE {role} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS;
EXCEPTION WHEN duplicate_object THEN
    RAISE NOTICE 'role % already exists: its attributes are left as they are', {role_name};
END
$$;

-- Every session of the role is read-only, whatever the client asks for.
ALTER ROLE {role} SET default_transaction_read_only = on;

DO $$
BEGIN
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), {role_name});
END
$$;

GRANT USAGE ON SCHEMA {ent} TO {role};

-- Only the contract's relations: first take back anything else granted in the schema.
REVOKE ALL ON ALL TABLES IN SCHEMA {ent} FROM {role};
GRANT SELECT ON {relations} TO {role};
