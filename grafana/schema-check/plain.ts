// Dashboard JSON spells enum members by their values ("absolute", "thresholds", "value"):
// Plain<T> is T with every string enum replaced by the union of its values, so that a JSON
// object literal can be checked against @grafana/schema's types. Everything else (required
// keys, unknown keys, value types, numeric enums) is checked as the schema declares it.
export type Plain<T> =
  T extends string ? (string extends T ? string : `${T}`)
  : T extends number | boolean | null | undefined ? T
  : T extends ReadonlyArray<infer U> ? Array<Plain<U>>
  : T extends (...args: never[]) => unknown ? T
  : T extends object ? { [K in keyof T]: Plain<T[K]> }
  : T;

import type { AnnotationQuery, Dashboard, DataQuery } from "@grafana/schema";

// Annotation queries are typed by their datasource (AnnotationQuery<TQuery>): ours are Prometheus
// queries, with the fields Grafana's Prometheus datasource reads for an annotation.
export interface PrometheusAnnotationTarget extends DataQuery {
  expr: string;
  step?: string;
  titleFormat?: string;
  textFormat?: string;
  tagKeys?: string;
  useValueForTime?: boolean;
}

export type ENTDashboard = Omit<Dashboard, "annotations"> & {
  annotations?: { list?: Array<AnnotationQuery<PrometheusAnnotationTarget> & { builtIn?: number; type?: string }> };
};
