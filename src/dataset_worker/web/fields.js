// Put an API 400 message next to the form field it is about.
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
 * Show `error` in `form`: next to its field when one is named, else in the form's .form-error.
 * Returns the field name used (or null) and moves focus to that field for keyboard users.
 */
export function showError(form, error) {
  clearErrors(form);
  const wrappers = [...form.querySelectorAll("[data-field]")];
  const names = wrappers.flatMap((w) => w.dataset.field.split(" "));
  const field = [400, 409, 422].includes(error.status) ? fieldOfError(error, names) : null;
  const wrapper = field && wrappers.find((w) => w.dataset.field.split(" ").includes(field));
  if (wrapper) {
    setFieldError(wrapper, error.message);
    wrapper.querySelector("input, select, textarea")?.focus();
    return field;
  }
  const general = form.querySelector(".form-error");
  if (general) general.textContent = error.message;
  return null;
}
