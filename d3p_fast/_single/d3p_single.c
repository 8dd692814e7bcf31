/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * d3p_single.c - d3p_fast._d3p_single: check_packet() as one CPython builtin.
 *
 * Why this module exists: issue 4 asks for one check_packet() call to cost no
 * more than 1.5x a cffi call to an empty C function.  cffi passes a call with
 * two or more arguments through a tuple and converts each argument, so even an
 * empty six-argument cffi function costs ~3x the empty call, before the Python
 * wrapper frame of d3p_fast/_c.py.  A METH_FASTCALL builtin receives its
 * arguments as a C array (vectorcall): no tuple, no frame
 * (bench/bench_d3p_window.py measures it against the empty cffi call).
 *
 * Same semantics as the cffi module: the check itself is
 * d3p_check_packet_inline() of d3p_fast/csrc/d3p_window.h, the code the
 * exported d3p_check_packet() runs.  This file only converts arguments.
 *
 * Fast path: data is exactly bytes or exports a simple contiguous buffer,
 * now_ms / window_ms / offset are exact ints (bool is not) in 0..2**64-1,
 * offset <= len(data), and the call is check_packet(data, now, W),
 * check_packet(data, now, W, offset) or check_packet(data, now, W, offset=...).
 * Everything else (wrong types, numpy integers, negative or huge ints,
 * non-contiguous buffers, other keywords, wrong arity) is handed, arguments
 * untouched, to the general path: the cffi wrapper d3p_fast._c.check_packet_cffi,
 * which checks the arguments with the helpers of the pure-Python twin, so
 * every TypeError / ValueError is worded exactly as d3p_fast._pure words it.
 *
 * State: no C globals.  The general path is cached in the module state (a
 * strong reference, looked up on the first call that needs it, because
 * d3p_fast._c imports this module: importing _c here at module init would be
 * circular).  A call allocates nothing: the result is a cached small int.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <limits.h>
#include <stdint.h>

#include "d3p_window.h"

/* Module and attribute the general path is taken from (see above). */
#define GENERAL_PATH_MODULE "d3p_fast._c"
#define GENERAL_PATH_NAME "check_packet_cffi"

typedef struct {
	/* d3p_fast._c.check_packet_cffi, or NULL until first needed. */
	PyObject *general_path;
} single_state;

static single_state *get_state(PyObject *module)
{
	return (single_state *)PyModule_GetState(module);
}

/*
 * Store an exact int in 0..2**64-1 in *out and return 1; return 0 (no
 * exception set) for anything else, which sends the call to the general path.
 */
static int exact_u64(PyObject *value, uint64_t *out)
{
	if (!PyLong_CheckExact(value))
		return 0; /* bool, numpy integers, floats, ...: general path */
#if ULONG_MAX >= UINT64_MAX
	/* PyLong_AsUnsignedLong reads a multi-digit int in a short loop, where
	 * PyLong_AsUnsignedLongLong (before 3.12) goes through a byte array. */
	{
		unsigned long number = PyLong_AsUnsignedLong(value);

		if (number == (unsigned long)-1 && PyErr_Occurred()) {
			PyErr_Clear(); /* negative or >= 2**64 */
			return 0;
		}
		*out = (uint64_t)number;
	}
#else
	{
		unsigned long long number = PyLong_AsUnsignedLongLong(value);

		if (number == (unsigned long long)-1 && PyErr_Occurred()) {
			PyErr_Clear();
			return 0;
		}
		*out = (uint64_t)number;
	}
#endif
	return 1;
}

/* The general path, imported on first use and then cached in the module state. */
static PyObject *general_path(PyObject *module)
{
	single_state *state = get_state(module);
	PyObject *source, *function;

	if (state->general_path != NULL)
		return state->general_path;
	source = PyImport_ImportModule(GENERAL_PATH_MODULE);
	if (source == NULL)
		return NULL;
	function = PyObject_GetAttrString(source, GENERAL_PATH_NAME);
	Py_DECREF(source);
	if (function == NULL)
		return NULL;
	/* The import may have let another thread fill the slot meanwhile. */
	if (state->general_path == NULL)
		state->general_path = function;
	else
		Py_DECREF(function);
	return state->general_path;
}

static PyObject *call_general_path(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
				   PyObject *kwnames)
{
	PyObject *function = general_path(module), *result;

	if (function == NULL)
		return NULL;
	/* Held for the call: clearing the module state must not free it mid-call. */
	Py_INCREF(function);
	result = PyObject_Vectorcall(function, args, (size_t)nargs, kwnames);
	Py_DECREF(function);
	return result;
}

/*
 * Does the call have a fast-path shape: (data, now, W), (data, now, W, offset)
 * or (data, now, W, offset=...)?  *offset is set to the offset argument, or to
 * NULL when it is absent (0).
 */
static int fast_call_shape(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
			   PyObject **offset)
{
	Py_ssize_t keywords = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);

	*offset = NULL;
	if (keywords == 0 && nargs == 3)
		return 1;
	if (keywords == 0 && nargs == 4) {
		*offset = args[3];
		return 1;
	}
	if (keywords == 1 && nargs == 3) {
		PyObject *name = PyTuple_GET_ITEM(kwnames, 0);

		/* Keyword values follow the positional ones in args. */
		if (PyUnicode_Check(name) &&
		    PyUnicode_CompareWithASCIIString(name, "offset") == 0) {
			*offset = args[3];
			return 1;
		}
	}
	return 0;
}

static PyObject *single_check_packet(PyObject *module, PyObject *const *args, size_t nargsf,
				     PyObject *kwnames)
{
	Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
	PyObject *offset_arg;
	uint64_t now_ms, window_ms, offset = 0;
	int verdict;
	Py_buffer view;

	/* The integers first: they have no side effect to undo. */
	if (!fast_call_shape(args, nargs, kwnames, &offset_arg) ||
	    !exact_u64(args[1], &now_ms) || !exact_u64(args[2], &window_ms) ||
	    (offset_arg != NULL && !exact_u64(offset_arg, &offset)))
		return call_general_path(module, args, nargs, kwnames);

	if (PyBytes_CheckExact(args[0])) {
		/* bytes: its own storage, no buffer export to release. */
		Py_ssize_t size = PyBytes_GET_SIZE(args[0]);

		if (offset > (uint64_t)size)
			return call_general_path(module, args, nargs, kwnames);
		verdict = d3p_check_packet_inline((const uint8_t *)PyBytes_AS_STRING(args[0]),
						  (size_t)size, (size_t)offset, now_ms, window_ms,
						  NULL);
		return PyLong_FromLong(verdict);
	}

	/* PyBUF_SIMPLE asks for one contiguous run of octets (len counts octets,
	 * whatever the item format); an exporter that cannot give one refuses. */
	if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) != 0) {
		PyErr_Clear(); /* str, None, strided views, ...: the general path words it */
		return call_general_path(module, args, nargs, kwnames);
	}
	if (!PyBuffer_IsContiguous(&view, 'C') || view.len < 0 || offset > (uint64_t)view.len) {
		PyBuffer_Release(&view);
		return call_general_path(module, args, nargs, kwnames);
	}
	verdict = d3p_check_packet_inline((const uint8_t *)view.buf, (size_t)view.len,
					  (size_t)offset, now_ms, window_ms, NULL);
	PyBuffer_Release(&view);
	return PyLong_FromLong(verdict);
}

PyDoc_STRVAR(single_check_packet_doc,
"check_packet(data, now_ms, window_ms, offset=0)\n"
"--\n"
"\n"
"Verdict for the D3P header at data[offset] (FRESH 0, TOO_OLD 1, TOO_NEW 2,\n"
"MALFORMED 3), computed by d3p_check_packet() of csrc/d3p_window.h.\n"
"\n"
"Arguments other than bytes-like data and plain ints in 0..2**64-1 go to\n"
"d3p_fast._c.check_packet_cffi, which raises the errors of d3p_fast._pure.");

static PyMethodDef single_methods[] = {
	{ "check_packet", (PyCFunction)(void (*)(void))single_check_packet,
	  METH_FASTCALL | METH_KEYWORDS, single_check_packet_doc },
	{ NULL, NULL, 0, NULL },
};

static int single_exec(PyObject *module)
{
	/* The same ABI number as the cffi module: d3p_fast._c uses this module
	 * only when both were compiled from the header it expects. */
	return PyModule_AddIntConstant(module, "D3P_FAST_ABI", D3P_FAST_ABI);
}

static PyModuleDef_Slot single_slots[] = {
	{ Py_mod_exec, (void *)single_exec },
	{ 0, NULL },
};

static int single_traverse(PyObject *module, visitproc visit, void *arg)
{
	single_state *state = get_state(module);

	if (state != NULL)
		Py_VISIT(state->general_path);
	return 0;
}

static int single_clear(PyObject *module)
{
	single_state *state = get_state(module);

	if (state != NULL)
		Py_CLEAR(state->general_path);
	return 0;
}

static void single_free(void *module)
{
	single_clear((PyObject *)module);
}

PyDoc_STRVAR(single_doc,
"One D3P header check as a vectorcall builtin (see d3p_fast/_single/d3p_single.c).");

static struct PyModuleDef single_module = {
	PyModuleDef_HEAD_INIT,
	.m_name = "d3p_fast._d3p_single",
	.m_doc = single_doc,
	.m_size = sizeof(single_state),
	.m_methods = single_methods,
	.m_slots = single_slots,
	.m_traverse = single_traverse,
	.m_clear = single_clear,
	.m_free = single_free,
};

PyMODINIT_FUNC PyInit__d3p_single(void)
{
	return PyModuleDef_Init(&single_module);
}
