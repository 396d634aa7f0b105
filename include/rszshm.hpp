// SPDX-License-Identifier: Apache-2.0
/**
 * rszshm.hpp - C++17 layer over rszshm.h: standard containers and named
 * objects inside a region, with plain pointers
 *
 * Header-only; uses only the public C API.  A region sits at the same address
 * in every process that attaches it, so the standard containers themselves
 * (std::vector, std::map, std::unordered_map, std::basic_string, std::deque)
 * with rsz::allocator can be built by one process and walked by another
 * with plain standard code:
 *
 *   using alloc = rsz::scoped_allocator<char>;  // every level in the region
 *   using str = std::basic_string<char, std::char_traits<char>,
 *                                 rsz::allocator<char>>;
 *   using vec = std::vector<int, rsz::allocator<int>>;
 *   using table = std::map<str, vec, std::less<str>,
 *       std::scoped_allocator_adaptor<rsz::allocator<std::pair<const str, vec>>>>;
 *
 *   rsz::region r("/dev/shm/x", rsz::options{}.create().heap().len(1 << 20));
 *   table *t = r.find_or_construct<table>("table", r.get_allocator<int>());
 *
 * Everything is in namespace rsz (the C header's struct rszshm takes the
 * name rszshm in C++).  Pieces:
 *  - rsz::region: move-only RAII handle over rszshm_open(), detached in
 *    its destructor.  Failures throw rsz::error (a std::system_error with
 *    the errno and the rszshm_errmsg() text); region::open(..., ec) returns
 *    the std::error_code instead, for code built without exceptions.
 *  - rsz::allocator<T>: draws from a heap region.  Its only state is the
 *    region's base address, the same in every process; each process finds its
 *    own handle from it in a registry (a fixed array of atomics, no lock on
 *    the allocation path), filled by region's constructor.  A container used
 *    from a process that has not attached its region gets rsz::error
 *    (EINVAL, naming the base address), never a crash.  std::bad_alloc when
 *    the region cannot grow.
 *  - named objects: construct<T>, find<T>, find_or_construct<T>, destroy<T>
 *    on the record index, with a tag of the type kept in the record (find
 *    of another type fails with EPROTOTYPE).  construct and find_or_construct
 *    run under the region's user lock (rszshm_lock()), and the record is
 *    added only once the constructor has returned: among processes racing,
 *    exactly one constructs, and a process killed inside a constructor leaves
 *    nothing under the name (the next locker is told the holder died; the
 *    block it was building is lost).  So do not call them while holding the
 *    user lock (EDEADLK).
 *  - rsz::user_lock (Lockable: works with std::unique_lock) and
 *    rsz::lock_guard over the region's robust user lock; both say whether
 *    the previous holder died (then repair what the lock guards).
 *
 * What may live in a region (construct refuses polymorphic types at compile
 * time; the rest is the caller's care): plain data, pointers into the same
 * region, and containers whose allocator is rsz::allocator (use
 * std::scoped_allocator_adaptor for nested ones).  Never polymorphic types
 * (their vtable pointer is process-private), pointers to process memory
 * (stack, heap, globals, std::string with the default allocator), function
 * pointers, file descriptors, or process-private mutexes (std::mutex).
 *
 * Thread safety: the standard containers are not thread-safe, within a
 * process or across processes.  Share one by taking the region's user lock
 * (rsz::lock_guard) around every access, readers included, or by a lock
 * of your own kept in the region (a process-shared, robust pthread mutex).
 */
#ifndef RSZSHM_HPP
#define RSZSHM_HPP

#include <rszshm.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <new>
#include <scoped_allocator>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>

namespace rsz {

/** error - a failed rszshm call: errno as code(), rszshm_errmsg() in what() */
class error : public std::system_error {
public:
	error(int e, const std::string &what)
		: std::system_error(e, std::generic_category(), what) {}
	/** the errno value */
	int errnum() const noexcept { return code().value(); }
};

namespace detail {

inline std::string last_msg(int e, const char *what)
{
	const char *m = rszshm_errmsg();
	std::string s(what);
	s += ": ";
	s += m ? m : std::strerror(e);
	return s;
}

[[noreturn]] inline void throw_errno(const char *what)
{
	int e = errno;
	throw error(e, last_msg(e, what));
}

/* Per-process registry: region base -> this process's handle.  Lookups
 * (every allocation) read atomics only; registration is rare. */
constexpr unsigned registry_slots = 64;
struct registry_entry {
	std::atomic<const void *> base{nullptr};
	std::atomic<struct rszshm *> handle{nullptr};
};
inline registry_entry registry[registry_slots];

inline struct rszshm *lookup(const void *base) noexcept
{
	for (auto &e : registry)
		if (e.base.load(std::memory_order_acquire) == base)
			return e.handle.load(std::memory_order_acquire);
	return nullptr;
}

inline bool enroll(const void *base, struct rszshm *h) noexcept
{
	for (auto &e : registry) {
		const void *expect = nullptr;
		if (e.base.load(std::memory_order_acquire) == base) {
			e.handle.store(h, std::memory_order_release);
			return true;
		}
		if (e.base.compare_exchange_strong(expect, base, std::memory_order_acq_rel)) {
			e.handle.store(h, std::memory_order_release);
			return true;
		}
	}
	return false;
}

inline void unenroll(const void *base) noexcept
{
	for (auto &e : registry)
		if (e.base.load(std::memory_order_acquire) == base) {
			e.handle.store(nullptr, std::memory_order_release);
			e.base.store(nullptr, std::memory_order_release);
		}
}

[[noreturn]] inline void throw_unattached(const void *base)
{
	char buf[96];
	std::snprintf(buf, sizeof(buf), "rszshm: no region at %p is attached in this process", base);
	throw error(EINVAL, buf);
}

inline struct rszshm *handle_of(const void *base)
{
	struct rszshm *h = lookup(base);
	if (!h)
		throw_unattached(base);
	return h;
}

/* A type's tag: FNV-1a of the compiler's name for it, and its size. */
template <class T> constexpr uint32_t type_tag() noexcept
{
#if defined(__GNUC__)
	const char *s = __PRETTY_FUNCTION__;
#else
	const char *s = __func__;
#endif
	uint32_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ static_cast<unsigned char>(*s)) * 16777619u;
	return h ^ static_cast<uint32_t>(sizeof(T));
}

} // namespace detail

/**
 * options - what region's constructor passes to rszshm_open()
 *
 * Chainable setters; the default attaches an existing region read-write.
 * init(f): f(struct rszshm *) runs in the maker before the region appears
 * under its name (rsz::allocator of that handle's base works in it); it
 * returns 0 or an errno value that the constructor throws (an exception
 * from it gives ECANCELED); the region is then never seen.
 */
struct options {
	struct rszshm_opts o{};
	std::function<int(struct rszshm *)> initf;

	options &create() { o.flags |= RSZSHM_CREATE; return *this; }
	options &excl() { o.flags |= RSZSHM_CREATE | RSZSHM_EXCL; return *this; }
	options &heap() { o.flags |= RSZSHM_HEAP; return *this; }
	options &read_only() { o.flags |= RSZSHM_RDONLY; return *this; }
	options &anon() { o.flags |= RSZSHM_ANON; return *this; }
	options &flags(unsigned f) { o.flags |= f; return *this; }
	options &mode(mode_t m) { o.mode = m; return *this; }
	options &len(size_t n) { o.len = n; return *this; }
	/** lock_timeout: the handle's lock bound (rszshm_opts.lock_timeout_ms,
	 * RSZSHM_LOCK_FOREVER for none): a wait past it throws ETIMEDOUT */
	options &lock_timeout(unsigned ms) { o.lock_timeout_ms = ms; return *this; }
	/** span: the most the region can grow to (scan.len) */
	options &span(size_t n)
	{
		o.scan = RSZSHM_DFLT_SCAN;
		o.scan.len = n;
		return *this;
	}
	options &init(std::function<int(struct rszshm *)> f) { initf = std::move(f); return *this; }
};

template <class T> class allocator;
class user_lock;

/**
 * region - a move-only attached region (rszshm_open()), detached in its
 * destructor.  The handle lives on the heap, so moves keep the registry's
 * pointer valid.
 */
class region {
public:
	region() noexcept = default;
	/** Throws rsz::error on failure. */
	region(const char *fname, const options &opts = options())
	{
		std::error_code ec;
		attach(fname, opts, ec);
		if (ec)
			throw error(ec.value(), msg_);
	}
	region(const std::string &fname, const options &opts = options())
		: region(fname.c_str(), opts) {}

	/** Non-throwing form: ec set (and an empty region) on failure. */
	static region open(const char *fname, const options &opts, std::error_code &ec) noexcept
	{
		region r;
		r.attach(fname, opts, ec);
		return r;
	}

	region(region &&o) noexcept : r_(o.r_) { o.r_ = nullptr; }
	region &operator=(region &&o) noexcept
	{
		if (this != &o) {
			close();
			r_ = o.r_;
			o.r_ = nullptr;
		}
		return *this;
	}
	region(const region &) = delete;
	region &operator=(const region &) = delete;
	~region() { close(); }

	/** Detach (rszshm_dt()); nothing if already detached. */
	void close() noexcept
	{
		if (!r_)
			return;
		detail::unenroll(r_->hdr);
		rszshm_dt(r_);
		delete r_;
		r_ = nullptr;
	}

	explicit operator bool() const noexcept { return r_ != nullptr; }
	struct rszshm *get() const noexcept { return r_; }
	/** the region's first address, the same in every process */
	void *base() const noexcept { return r_ ? static_cast<void *>(r_->hdr) : nullptr; }
	bool read_only() const noexcept { return r_ && (r_->flags & RSZSHM_RDONLY); }
	const char *name() const noexcept { return r_ ? r_->fname : ""; }

	template <class T = std::byte> allocator<T> get_allocator() const;

	/** Remove the region's file (rszshm_unlink()); throws on failure. */
	void unlink()
	{
		if (rszshm_unlink(need()) == -1)
			detail::throw_errno("rszshm_unlink");
	}

	struct rszshm_stats stats()
	{
		struct rszshm_stats st;
		if (rszshm_stats(need(), &st) == -1)
			detail::throw_errno("rszshm_stats");
		return st;
	}

	/**
	 * construct<T>(name, args...) - build a T in the region under @name
	 * Throws rsz::error EEXIST if the name exists (and the errors of
	 * rszshm_lock() and rszshm_rec_add()), std::bad_alloc when full, and
	 * whatever T's constructor throws (then nothing is left behind).
	 */
	template <class T, class... A> T *construct(const char *name, A &&...args)
	{
		bool built;
		return make<T>(name, false, built, std::forward<A>(args)...);
	}

	/**
	 * find<T>(name) - the T under @name, or nullptr if none.
	 * Throws rsz::error EPROTOTYPE if the name holds another type, and the
	 * errors of rszshm_rec_find() but ENOENT.
	 */
	template <class T> T *find(const char *name)
	{
		struct rszshm_rec_info info;
		void *p = rszshm_rec_find(need(), name, &info);
		if (!p) {
			if (errno == ENOENT)
				return nullptr;
			detail::throw_errno("rszshm_rec_find");
		}
		if (info.type != detail::type_tag<T>() || info.size != sizeof(T) ||
		    reinterpret_cast<uintptr_t>(p) % alignof(T) != 0)
			throw error(EPROTOTYPE, std::string("rszshm: record ") + name +
				    " holds another type");
		return static_cast<T *>(p);
	}

	/** find_or_construct<T>(name, args...) - exactly one process constructs */
	template <class T, class... A> T *find_or_construct(const char *name, A &&...args)
	{
		if (T *p = find<T>(name))
			return p;
		bool built;
		return make<T>(name, true, built, std::forward<A>(args)...);
	}

	/**
	 * destroy<T>(name) - remove the record, run ~T, free the block.
	 * Returns false if there is no such name.  Throws EPROTOTYPE as find.
	 */
	template <class T> bool destroy(const char *name)
	{
		T *p = find<T>(name);
		if (!p)
			return false;
		if (rszshm_rec_remove(r_, name) == -1) {
			if (errno == ENOENT)
				return false;
			detail::throw_errno("rszshm_rec_remove");
		}
		p->~T();
		rszshm_dealloc(r_, p);
		return true;
	}

private:
	struct rszshm *r_ = nullptr;
	std::string msg_;

	struct rszshm *need() const
	{
		if (!r_)
			throw error(EINVAL, "rszshm: empty region handle");
		return r_;
	}

	static int trampoline(struct rszshm *r, void *arg) noexcept
	{
		auto *f = static_cast<std::function<int(struct rszshm *)> *>(arg);
		/* So that rsz::allocator works inside the initializer. */
		if ((r->flags & RSZSHM_HEAP) && !detail::enroll(r->hdr, r))
			return EMFILE;
		int v;
		try {
			v = (*f)(r);
		} catch (...) {
			v = ECANCELED;
		}
		if (v != 0)
			detail::unenroll(r->hdr);
		return v;
	}

	void attach(const char *fname, const options &opts, std::error_code &ec) noexcept
	{
		ec.clear();
		struct rszshm *h = new (std::nothrow) struct rszshm;
		if (!h) {
			ec = std::error_code(ENOMEM, std::generic_category());
			msg_ = "rszshm: out of memory";
			return;
		}
		struct rszshm_opts o = opts.o;
		if (opts.initf) {
			o.init = trampoline;
			o.arg = const_cast<std::function<int(struct rszshm *)> *>(&opts.initf);
		}
		if (!rszshm_open(h, fname, &o)) {
			int e = errno;
			msg_ = detail::last_msg(e, "rszshm_open");
			delete h;
			ec = std::error_code(e, std::generic_category());
			return;
		}
		if ((h->flags & RSZSHM_HEAP) && !detail::enroll(h->hdr, h)) {
			rszshm_dt(h);
			delete h;
			msg_ = "rszshm: too many regions attached for rszshm.hpp's registry";
			ec = std::error_code(EMFILE, std::generic_category());
			return;
		}
		r_ = h;
	}

	template <class T, class... A>
	T *make(const char *name, bool or_find, bool &built, A &&...args)
	{
		static_assert(!std::is_polymorphic<T>::value,
			      "a polymorphic type cannot live in a region: its vtable pointer is process-private");
		built = false;
		struct rszshm *h = need();
		int lr = rszshm_lock(h);
		if (lr == -1)
			detail::throw_errno("rszshm_lock");
		struct unlocker {
			struct rszshm *h;
			~unlocker() { rszshm_unlock(h); }
		} u{h};
		if (or_find) {
			if (T *p = find<T>(name))
				return p;
		} else if (rszshm_rec_find(h, name, nullptr)) {
			throw error(EEXIST, std::string("rszshm: record ") + name + " exists");
		}
		void *mem = rszshm_alloc_aligned(h, alignof(T) > RSZSHM_ALIGN ? alignof(T) : RSZSHM_ALIGN,
						 sizeof(T));
		if (!mem) {
			if (errno == ENOMEM)
				throw std::bad_alloc();
			detail::throw_errno("rszshm_alloc_aligned");
		}
		T *p;
		try {
			p = ::new (mem) T(std::forward<A>(args)...);
		} catch (...) {
			rszshm_dealloc(h, mem);
			throw;
		}
		if (rszshm_rec_add(h, name, detail::type_tag<T>(), p, sizeof(T)) == -1) {
			int e = errno;
			std::string m = detail::last_msg(e, "rszshm_rec_add");
			p->~T();
			rszshm_dealloc(h, mem);
			throw error(e, m);
		}
		built = true;
		return p;
	}
};

/**
 * allocator<T> - a standard allocator drawing from a heap region
 *
 * State: the region's base address only (valid in every process).  Copies
 * and rebinds compare equal when they name one region; propagation traits
 * are all true, so moves and swaps between containers of one region never
 * copy elements.  allocate() throws std::bad_alloc when the span is full,
 * rsz::error EINVAL when this process has not attached the region (naming
 * the base), EPERM for a read-only handle; deallocate() in such a process
 * does nothing (the block stays live).
 */
template <class T> class allocator {
public:
	using value_type = T;
	using propagate_on_container_copy_assignment = std::true_type;
	using propagate_on_container_move_assignment = std::true_type;
	using propagate_on_container_swap = std::true_type;
	using is_always_equal = std::false_type;
	template <class U> struct rebind { using other = allocator<U>; };

	explicit allocator(const region &r) : base_(r.base())
	{
		if (!base_)
			throw error(EINVAL, "rszshm: allocator of an empty region handle");
		if (!(r.get()->flags & RSZSHM_HEAP))
			throw error(EINVAL, "rszshm: allocator of a raw region (no RSZSHM_HEAP)");
	}
	/** From a base address (region::base()) of a region this process attached. */
	explicit allocator(const void *base) noexcept : base_(base) {}
	template <class U> allocator(const allocator<U> &o) noexcept : base_(o.base()) {}

	const void *base() const noexcept { return base_; }

	T *allocate(std::size_t n)
	{
		if (n > std::numeric_limits<std::size_t>::max() / sizeof(T))
			throw std::bad_array_new_length();
		struct rszshm *h = detail::handle_of(base_);
		std::size_t al = alignof(T) > RSZSHM_ALIGN ? alignof(T) : RSZSHM_ALIGN;
		void *p = al == RSZSHM_ALIGN ? rszshm_alloc(h, n * sizeof(T))
					     : rszshm_alloc_aligned(h, al, n * sizeof(T));
		if (!p) {
			if (errno == ENOMEM)
				throw std::bad_alloc();
			detail::throw_errno("rszshm_alloc");
		}
		return static_cast<T *>(p);
	}

	void deallocate(T *p, std::size_t) noexcept
	{
		struct rszshm *h = detail::lookup(base_);
		if (h)
			rszshm_dealloc(h, p);
	}

	template <class U> bool operator==(const allocator<U> &o) const noexcept { return base_ == o.base(); }
	template <class U> bool operator!=(const allocator<U> &o) const noexcept { return base_ != o.base(); }

private:
	const void *base_;
};

/** scoped_allocator<T>: rsz::allocator for every level of nested containers */
template <class T> using scoped_allocator = std::scoped_allocator_adaptor<allocator<T>>;

template <class T> allocator<T> region::get_allocator() const
{
	return allocator<T>(*this);
}

/**
 * user_lock - the region's robust user lock as a Lockable (std::unique_lock,
 * std::lock_guard); lock() throws rsz::error.  previous_holder_died()
 * tells whether the last lock() or try_lock() took it from a dead holder.
 */
class user_lock {
public:
	explicit user_lock(const region &r) noexcept : r_(r.get()) {}
	void lock()
	{
		int v = rszshm_lock(r_);
		if (v == -1)
			detail::throw_errno("rszshm_lock");
		died_ = v == 1;
	}
	bool try_lock()
	{
		int v = rszshm_trylock(r_);
		if (v == -1) {
			if (errno == EBUSY)
				return false;
			detail::throw_errno("rszshm_trylock");
		}
		died_ = v == 1;
		return true;
	}
	void unlock()
	{
		if (rszshm_unlock(r_) == -1)
			detail::throw_errno("rszshm_unlock");
	}
	bool previous_holder_died() const noexcept { return died_; }

private:
	struct rszshm *r_;
	bool died_ = false;
};

/** lock_guard - holds the region's user lock for a scope */
class lock_guard {
public:
	explicit lock_guard(const region &r) : l_(r) { l_.lock(); }
	~lock_guard() { rszshm_unlock_quiet(); }
	lock_guard(const lock_guard &) = delete;
	lock_guard &operator=(const lock_guard &) = delete;
	/** true when the previous holder died holding it: repair what it guards */
	bool previous_holder_died() const noexcept { return l_.previous_holder_died(); }

private:
	user_lock l_;
	void rszshm_unlock_quiet() noexcept
	{
		try {
			l_.unlock();
		} catch (...) {
		}
	}
};

} // namespace rsz

#endif /* RSZSHM_HPP */
