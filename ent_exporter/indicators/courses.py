"""Learning progress: enrolments, course completions, activity completions and badges, per
structure (the course's establishment: Moodle's top-level course category) and, opt-in, per course.

Reads the optional relation ``course_progress`` (one row per person enrolled in a course:
user_id, structure_id, course_id, completed_at, activities_complete, activities_passed,
activities_failed, badges); on a source without it, publishes nothing (see ent_exporter.aggregation.optional).
Daily: completions move slowly, and the statement reads every enrolment.

- **enrolled users**: distinct people with an enrolment (in the course; in at least one course
  of the structure; platform-wide for structure="all").
- **users who completed**: distinct enrolled people whose completion of the course (of at
  least one course of the structure, or of the platform) is dated and not after now.
- **completion ratio**: completed enrolments ÷ enrolments (pairs of a person and a course),
  0 when none; per course it is completed users ÷ enrolled users.
- **activity completions**: the enrolled people's activity completion records, by ``state``:
  ``complete``, ``passed`` (complete with a pass grade), ``failed`` (complete with a fail grade).
- **badges issued**: course badges the enrolled people hold.

The per-structure series have ``course="all"``. The per-course series come from the collector
``course_progress_by_course``, which runs only when named in ``collectors.enabled`` (a course
label multiplies the series by the number of courses: the cardinality guard folds the rarest
into ``course="other"``). Every structure of ``structures`` has its series, 0 when it has no
enrolment.
"""

from __future__ import annotations

from psycopg import sql

from ent_exporter.aggregation.optional import relation_present
from ent_exporter.engine.collector import ALL_STRUCTURES, Cadence, Collector, Context, Family, Kind, Result, Samples

RELATION = "course_progress"
ALL_COURSES = "all"
LABELS = ("structure", "course")
STATES = ("complete", "passed", "failed")

ENROLLED_USERS = Family(
    "ent_course_enrolled_users",
    Kind.GAUGE,
    'People enrolled in the course (course="all": in at least one course of the structure; structure="all": '
    "of the platform).",
    LABELS,
    counts_people=True,
    title_en="Enrolled people",
    title_fr="Personnes inscrites",
    meaning_fr="Personnes inscrites au cours ; pour l'ensemble des cours, personnes inscrites à au moins un cours de"
    " l'établissement (ou de la plateforme).",
)
COMPLETED_USERS = Family(
    "ent_course_completed_users",
    Kind.GAUGE,
    'Enrolled people who completed the course (course="all": at least one course of the structure).',
    LABELS,
    counts_people=True,
    title_en="People who completed a course",
    title_fr="Personnes ayant achevé un cours",
    meaning_fr="Personnes inscrites qui ont achevé le cours ; pour l'ensemble des cours, au moins un cours de"
    " l'établissement.",
)
COMPLETION_RATIO = Family(
    "ent_course_completion_ratio",
    Kind.GAUGE,
    "Completed enrolments divided by enrolments (a person in a course is one enrolment; 0 when none).",
    LABELS,
    additive=False,
    privacy_follows=("ent_course_enrolled_users", "ent_course_completed_users"),
    unit="ratio",
    title_en="Completion ratio",
    title_fr="Taux d'achèvement",
    meaning_fr="Inscriptions achevées divisées par les inscriptions (une personne dans un cours est une inscription ;"
    " 0 quand il n'y en a aucune).",
)
ACTIVITY_COMPLETIONS = Family(
    "ent_course_activity_completions",
    Kind.GAUGE,
    "Activity completions of the enrolled people, by state: complete, passed (pass grade), failed (fail grade).",
    (*LABELS, "state"),
    title_en="Activity completions",
    title_fr="Activités achevées",
    meaning_fr="Activités achevées par les personnes inscrites, selon leur état : achevée, réussie (note de réussite)"
    " ou échouée (note d'échec).",
)
BADGES_ISSUED = Family(
    "ent_course_badges_issued",
    Kind.GAUGE,
    "Course badges held by the people enrolled in the course.",
    LABELS,
    title_en="Badges issued",
    title_fr="Badges délivrés",
    meaning_fr="Badges de cours détenus par les personnes inscrites au cours.",
)
FAMILIES = (ENROLLED_USERS, COMPLETED_USERS, COMPLETION_RATIO, ACTIVITY_COMPLETIONS, BADGES_ISSUED)

# Per structure (course "all") and platform-wide; {grouping} adds the per-course rows instead.
PROGRESS = sql.SQL("""
    WITH p AS (
        SELECT user_id, coalesce(nullif(structure_id, ''), 'unknown') AS structure,
               coalesce(nullif(course_id, ''), 'unknown') AS course,
               coalesce(completed_at <= %(now)s, false) AS completed,
               activities_complete, activities_passed, activities_failed, badges
        FROM {course_progress}
        WHERE user_id IS NOT NULL
    )
    SELECT {structure}, {course},
           count(DISTINCT user_id), count(DISTINCT user_id) FILTER (WHERE completed),
           count(*), count(*) FILTER (WHERE completed),
           coalesce(sum(activities_complete), 0), coalesce(sum(activities_passed), 0),
           coalesce(sum(activities_failed), 0), coalesce(sum(badges), 0)
    FROM p
    GROUP BY {grouping}
""")
STRUCTURES = sql.SQL("SELECT DISTINCT coalesce(nullif(structure_id, ''), 'unknown') FROM {structures}")


class _CourseProgress(Collector):
    abstract = True
    cadence = Cadence.DAILY
    families = FAMILIES

    def queries(self) -> list[dict[str, sql.Composable]]:
        raise NotImplementedError

    def collect(self, ctx: Context) -> Result:
        samples: Samples = {family.name: {} for family in self.families}
        if not relation_present(ctx, RELATION):
            return Result(samples)
        rows = [row for fill in self.queries() for row in ctx.source.fetch(PROGRESS, {"now": ctx.now}, **fill)]
        for key in self.zero_keys(ctx):
            self.add(samples, key, (0, 0, 0, 0, 0, 0, 0, 0))
        for structure, course, *values in rows:
            self.add(samples, (structure, course), values)
        return Result(samples)

    def zero_keys(self, ctx: Context) -> list[tuple[str, str]]:
        return []

    @staticmethod
    def add(samples: Samples, key: tuple[str, str], values) -> None:
        users, completed, enrolments, completions, complete, passed, failed, badges = values
        samples[ENROLLED_USERS.name][key] = float(users)
        samples[COMPLETED_USERS.name][key] = float(completed)
        samples[COMPLETION_RATIO.name][key] = completions / enrolments if enrolments else 0.0
        for state, count in zip(STATES, (complete, passed, failed)):
            samples[ACTIVITY_COMPLETIONS.name][(*key, state)] = float(count)
        samples[BADGES_ISSUED.name][key] = float(badges)


class CourseProgressCollector(_CourseProgress):
    """Per structure and platform-wide (course="all")."""

    name = "course_progress"

    def queries(self) -> list[dict[str, sql.Composable]]:
        every = sql.Literal(ALL_COURSES)
        return [
            {"structure": sql.SQL("structure"), "course": every, "grouping": sql.SQL("structure")},
            {"structure": sql.Literal(ALL_STRUCTURES), "course": every, "grouping": sql.SQL("()")},
        ]

    def zero_keys(self, ctx: Context) -> list[tuple[str, str]]:
        structures = [row[0] for row in ctx.source.fetch(STRUCTURES)]
        return [(structure, ALL_COURSES) for structure in [*structures, ALL_STRUCTURES]]


class CourseProgressByCourseCollector(_CourseProgress):
    """Per course (opt-in: list it in collectors.enabled)."""

    name = "course_progress_by_course"
    opt_in = True

    def queries(self) -> list[dict[str, sql.Composable]]:
        return [
            {"structure": sql.SQL("structure"), "course": sql.SQL("course"), "grouping": sql.SQL("structure, course")}
        ]
