-- Moodle: the source contract as views over Moodle's own tables (schema and table prefix
-- as configured, mdl_ by default). Moodle stores times as unix seconds (bigint, 0 for
-- "never"): to_timestamp() turns them into timestamptz.
--
-- structures: the top-level course categories (parent = 0), one per school in a shared
--   Moodle. structure_id is the category's idnumber (put the UAI there), otherwise
--   "category-<id>".
-- accounts: a user is attached to a top-level category when they have a role assignment
--   in its context or in any context below it (sub-category, course, activity, block).
--   Deleted and suspended users, and the site guest, are left out. activated_at = firstaccess.
--   {enrolment_rule}
-- profile: the user's role archetypes, highest first: manager, coursecreator -> Personnel;
--   editingteacher, teacher -> Teacher; student -> Student; guest -> Guest. Roles without
--   one of these archetypes (user, frontpage, custom roles) give no profile (unknown).
-- Who is counted: the log rows of people. Left out: the site guest (its id is the site
--   setting siteguest), visitors who are not logged in (userid 0), and what an administrator
--   does while logged in as someone else (realuserid set).{anonymous_rule}
-- logins: \core\event\user_loggedin. app accesses: course views (app "course"; the front
--   page, the site course with category 0, is its own app "frontpage") and activity views
--   (\mod_xxx\event\course_module_viewed, app = the component, mod_xxx).
-- connector_events: the authentication plugin of each login (success, the user's auth:
--   manual, ldap, cas, oauth2, saml2, ...) and of each credential failure (failure: a
--   user_login_failed whose reason is 3, wrong password; unknown usernames, suspended or
--   locked accounts and captcha failures say nothing about a connector); and each run of a
--   synchronisation task in the task log (connector = its component: auth_ldap, auth_db,
--   enrol_ldap, enrol_database, ...; outcome = result, duration = timeend - timestart).
--   Its event_id is NULL: two tables feed it, so the counters watermark on occurred_at.

CREATE OR REPLACE VIEW {ent}.structures AS
SELECT coalesce(nullif(btrim(cat.idnumber), ''), 'category-' || cat.id)::text AS structure_id,
       cat.name::text AS name,
       'course_category'::text AS kind
FROM {course_categories} AS cat
WHERE cat.parent = 0;

CREATE OR REPLACE VIEW {ent}.accounts AS
SELECT DISTINCT
       u.id::text AS user_id,
       coalesce(nullif(btrim(cat.idnumber), ''), 'category-' || cat.id)::text AS structure_id,
       p.profile::text AS profile,
       to_timestamp(nullif(u.timecreated, 0)) AS created_at,
       to_timestamp(nullif(u.firstaccess, 0)) AS activated_at
FROM {role_assignments} AS ra
JOIN {context} AS ctx ON ctx.id = ra.contextid
-- the second element of a context path is the context of a top-level category (level 40)
JOIN {context} AS top ON top.id = nullif(split_part(ctx.path, '/', 3), '')::bigint AND top.contextlevel = 40
JOIN {course_categories} AS cat ON cat.id = top.instanceid AND cat.parent = 0
JOIN {user} AS u ON u.id = ra.userid AND u.deleted = 0 AND u.suspended = 0
LEFT JOIN LATERAL (
    SELECT CASE r.archetype
               WHEN 'manager' THEN 'Personnel' WHEN 'coursecreator' THEN 'Personnel'
               WHEN 'editingteacher' THEN 'Teacher' WHEN 'teacher' THEN 'Teacher'
               WHEN 'student' THEN 'Student' WHEN 'guest' THEN 'Guest'
           END AS profile
    FROM {role_assignments} AS ura
    JOIN {role} AS r ON r.id = ura.roleid
    WHERE ura.userid = u.id
      AND r.archetype IN ('manager', 'coursecreator', 'editingteacher', 'teacher', 'student', 'guest')
    ORDER BY CASE r.archetype
                 WHEN 'manager' THEN 1 WHEN 'coursecreator' THEN 1
                 WHEN 'editingteacher' THEN 2 WHEN 'teacher' THEN 2
                 WHEN 'student' THEN 3 ELSE 4
             END
    LIMIT 1
) AS p ON true
WHERE u.id IS DISTINCT FROM {guest}{enrolment_filter};

CREATE OR REPLACE VIEW {ent}.login_events AS
SELECT l.id AS event_id,
       l.userid::text AS user_id,
       p.profile::text AS profile,
       to_timestamp(l.timecreated) AS occurred_at
FROM {log} AS l
LEFT JOIN LATERAL (
    SELECT CASE r.archetype
               WHEN 'manager' THEN 'Personnel' WHEN 'coursecreator' THEN 'Personnel'
               WHEN 'editingteacher' THEN 'Teacher' WHEN 'teacher' THEN 'Teacher'
               WHEN 'student' THEN 'Student' WHEN 'guest' THEN 'Guest'
           END AS profile
    FROM {role_assignments} AS ura
    JOIN {role} AS r ON r.id = ura.roleid
    WHERE ura.userid = l.userid
      AND r.archetype IN ('manager', 'coursecreator', 'editingteacher', 'teacher', 'student', 'guest')
    ORDER BY CASE r.archetype
                 WHEN 'manager' THEN 1 WHEN 'coursecreator' THEN 1
                 WHEN 'editingteacher' THEN 2 WHEN 'teacher' THEN 2
                 WHEN 'student' THEN 3 ELSE 4
             END
    LIMIT 1
) AS p ON true
WHERE l.eventname = '\core\event\user_loggedin'
  AND l.userid <> 0
  AND l.realuserid IS NULL
  AND l.userid IS DISTINCT FROM {guest}{anonymous_filter};

CREATE OR REPLACE VIEW {ent}.app_access_events AS
SELECT l.id AS event_id,
       l.userid::text AS user_id,
       p.profile::text AS profile,
       CASE WHEN l.eventname <> '\core\event\course_viewed' THEN l.component
            WHEN l.courseid = {site_course} THEN 'frontpage'
            ELSE 'course'
       END::text AS app,
       to_timestamp(l.timecreated) AS occurred_at
FROM {log} AS l
LEFT JOIN LATERAL (
    SELECT CASE r.archetype
               WHEN 'manager' THEN 'Personnel' WHEN 'coursecreator' THEN 'Personnel'
               WHEN 'editingteacher' THEN 'Teacher' WHEN 'teacher' THEN 'Teacher'
               WHEN 'student' THEN 'Student' WHEN 'guest' THEN 'Guest'
           END AS profile
    FROM {role_assignments} AS ura
    JOIN {role} AS r ON r.id = ura.roleid
    WHERE ura.userid = l.userid
      AND r.archetype IN ('manager', 'coursecreator', 'editingteacher', 'teacher', 'student', 'guest')
    ORDER BY CASE r.archetype
                 WHEN 'manager' THEN 1 WHEN 'coursecreator' THEN 1
                 WHEN 'editingteacher' THEN 2 WHEN 'teacher' THEN 2
                 WHEN 'student' THEN 3 ELSE 4
             END
    LIMIT 1
) AS p ON true
WHERE (l.eventname = '\core\event\course_viewed' OR (l.target = 'course_module' AND l.action = 'viewed'))
  AND l.userid <> 0
  AND l.realuserid IS NULL
  AND l.userid IS DISTINCT FROM {guest}{anonymous_filter};

-- Two sources, hence no event_id (the counters watermark on occurred_at). The log rows: the
-- people's logins (success) and their credential failures (failure; the reason is in
-- "other", JSON or, when the log store's jsonformat setting is off, PHP-serialized).
-- The task log: the runs of the synchronisation tasks, at their end (when Moodle writes them).
CREATE OR REPLACE VIEW {ent}.connector_events AS
SELECT NULL::bigint AS event_id,
       u.auth::text AS connector,
       NULL::text AS structure_id,
       to_timestamp(l.timecreated) AS occurred_at,
       l.eventname = '\core\event\user_loggedin' AS success,
       NULL::double precision AS duration_ms
FROM {log} AS l
LEFT JOIN {user} AS u ON u.id = l.userid
WHERE l.eventname IN ('\core\event\user_loggedin', '\core\event\user_login_failed')
  AND ((l.eventname = '\core\event\user_loggedin'
        AND l.userid <> 0 AND l.realuserid IS NULL AND l.userid IS DISTINCT FROM {guest})
       OR (l.eventname = '\core\event\user_login_failed'
           AND coalesce(substring(l.other FROM '"reason":\s*(\d+)'),
                        substring(l.other FROM 's:6:"reason";i:(\d+);')) = '3'))
UNION ALL
SELECT NULL::bigint AS event_id,
       t.component::text AS connector,
       NULL::text AS structure_id,
       to_timestamp(t.timeend::double precision) AS occurred_at,
       t.result = 0 AS success,
       ((t.timeend - t.timestart) * 1000)::double precision AS duration_ms
FROM {task_log} AS t
WHERE {sync_tasks};

-- course_progress (optional relation of the contract): one row per person enrolled in a
--   course (an active enrolment, user_enrolments.status = 0, in an enabled instance, enrol.status
--   = 0), with structure_id = the course's top-level category as for accounts, course_id = the
--   course's idnumber, otherwise "course-<id>". completed_at: course_completions.timecompleted.
--   Activity completions: the person's course_modules_completion rows in the course's modules
--   (modules being deleted left out), by completionstate: 1 complete, 2 complete with a pass
--   grade, 3 complete with a fail grade (0, incomplete, is not counted). badges: course badges
--   (badge.type = 2 of that course) issued to the person. The people rule is the accounts' one:
--   deleted and suspended users and the site guest are left out; so are courses outside any
--   top-level category (the front page).
CREATE OR REPLACE VIEW {ent}.course_progress AS
WITH enrolled AS (
    SELECT DISTINCT ue.userid, e.courseid
    FROM {user_enrolments} AS ue
    JOIN {enrol} AS e ON e.id = ue.enrolid
    WHERE ue.status = 0 AND e.status = 0
)
SELECT en.userid::text AS user_id,
       coalesce(nullif(btrim(top.idnumber), ''), 'category-' || top.id)::text AS structure_id,
       coalesce(nullif(btrim(c.idnumber), ''), 'course-' || c.id)::text AS course_id,
       to_timestamp(nullif(cc.timecompleted, 0)) AS completed_at,
       coalesce(m.complete, 0)::bigint AS activities_complete,
       coalesce(m.passed, 0)::bigint AS activities_passed,
       coalesce(m.failed, 0)::bigint AS activities_failed,
       coalesce(b.badges, 0)::bigint AS badges
FROM enrolled AS en
JOIN {course} AS c ON c.id = en.courseid
JOIN {course_categories} AS cat ON cat.id = c.category
-- the first element of a category's path is its top-level category
JOIN {course_categories} AS top ON top.id = nullif(split_part(cat.path, '/', 2), '')::bigint AND top.parent = 0
JOIN {user} AS u ON u.id = en.userid AND u.deleted = 0 AND u.suspended = 0
LEFT JOIN {course_completions} AS cc ON cc.userid = en.userid AND cc.course = c.id
LEFT JOIN LATERAL (
    SELECT count(*) FILTER (WHERE cmc.completionstate = 1) AS complete,
           count(*) FILTER (WHERE cmc.completionstate = 2) AS passed,
           count(*) FILTER (WHERE cmc.completionstate = 3) AS failed
    FROM {course_modules_completion} AS cmc
    JOIN {course_modules} AS cm ON cm.id = cmc.coursemoduleid
    WHERE cmc.userid = en.userid AND cm.course = c.id AND cm.deletioninprogress = 0
) AS m ON true
LEFT JOIN LATERAL (
    SELECT count(*) AS badges
    FROM {badge_issued} AS bi
    JOIN {badge} AS bd ON bd.id = bi.badgeid
    WHERE bi.userid = en.userid AND bd.type = 2 AND bd.courseid = c.id
) AS b ON true
WHERE u.id IS DISTINCT FROM {guest};

-- account_feeds (optional relation of the contract): the runs of the user and enrolment
--   synchronisation tasks in the task log (the same tasks as connector_events), one feed per task:
--   feed = its class without the "\task\" part ("auth_ldap/sync_task", "enrol_database/sync_enrolments"),
--   success = result = 0. Moodle does not record rows read or imported: those columns are NULL.
CREATE OR REPLACE VIEW {ent}.account_feeds AS
SELECT replace(regexp_replace(t.classname, '^\\', ''), '\task\', '/')::text AS feed,
       to_timestamp(t.timestart::double precision) AS started_at,
       to_timestamp(t.timeend::double precision) AS finished_at,
       t.result = 0 AS success,
       NULL::bigint AS rows_read, NULL::bigint AS rows_imported, NULL::bigint AS rows_rejected,
       NULL::bigint AS rows_skipped
FROM {task_log} AS t
WHERE {sync_tasks};

-- user_classes (optional relation of the contract): a class is a cohort defined in a course
--   category (the way ENT synchronisations create a cohort per class in each school's category);
--   structure_id = that category's top-level category as for accounts, class_name = the cohort's
--   name. Site-wide cohorts (system context) belong to no structure and are left out; so are
--   deleted and suspended users and the site guest.
CREATE OR REPLACE VIEW {ent}.user_classes AS
SELECT DISTINCT
       cm.userid::text AS user_id,
       coalesce(nullif(btrim(cat.idnumber), ''), 'category-' || cat.id)::text AS structure_id,
       co.name::text AS class_name
FROM {cohort_members} AS cm
JOIN {cohort} AS co ON co.id = cm.cohortid
JOIN {context} AS ctx ON ctx.id = co.contextid
JOIN {context} AS top ON top.id = nullif(split_part(ctx.path, '/', 3), '')::bigint AND top.contextlevel = 40
JOIN {course_categories} AS cat ON cat.id = top.instanceid AND cat.parent = 0
JOIN {user} AS u ON u.id = cm.userid AND u.deleted = 0 AND u.suspended = 0
WHERE u.id IS DISTINCT FROM {guest};
