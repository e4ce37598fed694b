// Put an API 400 message next to the form field it is about, or each of several messages next
// to its own field when the reply lists them (the API's `errors`: [{field, message}]).
//
// Each field wrapper in a form carries data-field="<JSON name>" and holds a .field-error
// element. The field is found from the error's structured detail when the server gives one
// (detail.field, detail[].field as the API's validation errors carry, or pydantic's detail[].loc), otherwise from the first field name the
// sentence mentions ("minInterval must not be greater than maxInterval" -> minInterval).

/** The JSON field name an ApiError is about, or null. `names` are the form's field names. */
export function fieldOfError(error, names) {
  const detail = error.detail;
  const candidates = [];
  if (detail && typeof detail === "object") {
    if (typeof detail.field === "string") candidates.push(detail.field);
    const list = Array.isArray(detail) ? detail : Array.isArray(detail.errors) ? detail.errors : [];
    for (const item of list) {
      if (item && typeof item.field === "string") candidates.push(item.field);
      if (item && Array.isArray(item.loc)) candidates.push(...item.loc.map(String).reverse());
    }
  }
  for (const name of candidates) if (names.includes(name)) return name;
  return firstMentioned(error.message || "", names);
}

function firstMentioned(message, names) {
  let best = null;
  let bestAt = Infinity;
  for (const name of names) {
    const match = new RegExp(`\\b${name}\\b`, "i").exec(message);
    if (match && match.index < bestAt) {
      best = name;
      bestAt = match.index;
    }
  }
  return best;
}

/**
 * The problems of `error` placed on fields: a Map of field name -> message (several messages for
 * one field joined), plus the problems no field of `names` was found for.
 */
export function fieldErrors(error, names) {
  const placed = new Map();
  const unplaced = [];
  for (const item of problemsOf(error)) {
    const field = fieldOfError({ message: item.message, detail: { field: item.field } }, names);
    if (!field) unplaced.push(item.message);
    else placed.set(field, placed.has(field) ? `${placed.get(field)} ${item.message}` : item.message);
  }
  if (!placed.size) {
    // No list, or nothing in it matched: the whole sentence, at the field it names if any.
    const field = fieldOfError(error, names);
    return field ? { placed: new Map([[field, error.message]]), unplaced: [] } : { placed, unplaced: [error.message] };
  }
  return { placed, unplaced };
}

/** Every {field, message} the reply lists: `errors`, else validation errors in `detail`. */
function problemsOf(error) {
  const valid = (list) => (Array.isArray(list) ? list.filter((p) => p && typeof p.message === "string") : []);
  const errors = valid(error.errors);
  return errors.length ? errors : valid(error.detail);
}

/** Remove every field message and the form-level message of `form`. */
export function clearErrors(form) {
  for (const wrapper of form.querySelectorAll("[data-field]")) setFieldError(wrapper, "");
  const general = form.querySelector(".form-error");
  if (general) general.textContent = "";
}

function setFieldError(wrapper, message) {
  const slot = wrapper.querySelector(".field-error");
  if (slot) slot.textContent = message;
  wrapper.classList.toggle("invalid", Boolean(message));
  for (const input of wrapper.querySelectorAll("input, select, textarea")) {
    if (message) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }
}

/**
 * Show `error` in `form`: each problem next to the field it names (every invalid field is
 * marked), the rest in the form's .form-error. Returns the names of the fields marked, in page
 * order, and moves focus to the first of them for keyboard users.
 */
export function showError(form, error) {
  clearErrors(form);
  const wrappers = [...form.querySelectorAll("[data-field]")];
  const names = wrappers.flatMap((w) => w.dataset.field.split(" "));
  const fieldRelated = [400, 409, 422].includes(error.status);
  const { placed, unplaced } = fieldRelated ? fieldErrors(error, names) : { placed: new Map(), unplaced: [error.message] };
  const marked = [];
  for (const wrapper of wrappers) {
    const mine = wrapper.dataset.field.split(" ").filter((name) => placed.has(name));
    if (!mine.length) continue;
    setFieldError(wrapper, mine.map((name) => placed.get(name)).join(" "));
    marked.push(...mine);
  }
  const general = form.querySelector(".form-error");
  if (general) general.textContent = unplaced.join(" ");
  const first = wrappers.find((w) => w.classList.contains("invalid"));
  first?.querySelector("input, select, textarea")?.focus();
  return marked;
}
