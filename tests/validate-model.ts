// Schema validation with kubernetes-models. Its base package is ESM-only, so under this project's
// node10 module resolution the `validate()` method is invisible to tsc (it exists at runtime).
type Validatable = new (data: unknown) => { validate(): void };

/** Loads `kubernetes-models/<path>` (or a CRD package path) and validates `obj` against the export `name`. */
export async function validateAs(modulePath: string, name: string, obj: unknown): Promise<void> {
  const mod = (await import(modulePath)) as Record<string, unknown>;
  const Model = mod[name] as Validatable | undefined;
  if (!Model) throw new Error(`${modulePath} exports no ${name}`);
  new Model(obj).validate();
}
