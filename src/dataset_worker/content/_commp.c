/* Native commP core: placeholder until the content-core issue fills it in. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static struct PyModuleDef commp_module = {PyModuleDef_HEAD_INIT, "_commp", NULL, -1, NULL};

PyMODINIT_FUNC PyInit__commp(void) { return PyModule_Create(&commp_module); }
