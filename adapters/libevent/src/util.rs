//! `event2/util.h`: the portability helpers libevent programs use (sockets, strings,
//! addresses, randomness, monotonic time).

use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
use std::mem::size_of;
use std::net::{IpAddr, SocketAddr};

use crate::log::guard;

fn setsockopt_int(fd: c_int, level: c_int, opt: c_int, v: c_int) -> c_int {
    // SAFETY: `v` is a live int of the size passed.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            &v as *const c_int as *const c_void,
            size_of::<c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        0
    } else {
        -1
    }
}

fn fcntl_or(fd: c_int, get: c_int, set: c_int, bit: c_int) -> c_int {
    // SAFETY: fcntl on a caller-supplied descriptor (an invalid one fails with EBADF).
    let flags = unsafe { libc::fcntl(fd, get) };
    if flags < 0 {
        return -1;
    }
    if flags & bit != 0 {
        return 0;
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, set, flags | bit) } < 0 {
        -1
    } else {
        0
    }
}

/// # Safety
///
/// `sv` points to two writable ints.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn evutil_socketpair(
    d: c_int,
    ty: c_int,
    proto: c_int,
    sv: *mut c_int,
) -> c_int {
    if sv.is_null() {
        return -1;
    }
    // SAFETY: caller's contract.
    unsafe { libc::socketpair(d, ty, proto, sv) }
}

#[unsafe(no_mangle)]
pub extern "C" fn evutil_make_socket_nonblocking(fd: c_int) -> c_int {
    fcntl_or(fd, libc::F_GETFL, libc::F_SETFL, libc::O_NONBLOCK)
}

#[unsafe(no_mangle)]
pub extern "C" fn evutil_make_socket_closeonexec(fd: c_int) -> c_int {
    fcntl_or(fd, libc::F_GETFD, libc::F_SETFD, libc::FD_CLOEXEC)
}

#[unsafe(no_mangle)]
pub extern "C" fn evutil_make_listen_socket_reuseable(fd: c_int) -> c_int {
    setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)
}

#[unsafe(no_mangle)]
pub extern "C" fn evutil_make_listen_socket_reuseable_port(fd: c_int) -> c_int {
    setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)
}

#[unsafe(no_mangle)]
pub extern "C" fn evutil_make_listen_socket_ipv6only(fd: c_int) -> c_int {
    setsockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1)
}

#[unsafe(no_mangle)]
pub extern "C" fn evutil_make_tcp_listen_socket_deferred(fd: c_int) -> c_int {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_DEFER_ACCEPT, 1)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = fd;
        0
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn evutil_closesocket(fd: c_int) -> c_int {
    // SAFETY: closes the caller's descriptor, as asked.
    unsafe { libc::close(fd) }
}

/// # Safety
///
/// `s` is a NUL-terminated string; `endptr` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn evutil_strtoll(
    s: *const c_char,
    endptr: *mut *mut c_char,
    base: c_int,
) -> i64 {
    // SAFETY: caller's contract.
    unsafe { libc::strtoll(s, endptr, base) }
}

// `evutil_snprintf` is variadic and `evutil_vsnprintf` takes a `va_list`: on glibc, whose
// `snprintf`/`vsnprintf` always NUL-terminate and return the untruncated length (what
// libevent's wrappers guarantee), they are tail jumps that keep every register and stack
// argument of the caller.
#[cfg(target_arch = "x86_64")]
macro_rules! tail_jump {
    ($name:ident => $target:path) => {
        /// A tail jump (see the comment above).
        #[unsafe(no_mangle)]
        #[unsafe(naked)]
        pub extern "C" fn $name() {
            // SAFETY: a naked function whose only instruction jumps to the C function with
            // the same contract; no stack frame or register is touched.
            core::arch::naked_asm!("jmp {f}@PLT", f = sym $target)
        }
    };
}
#[cfg(target_arch = "aarch64")]
macro_rules! tail_jump {
    ($name:ident => $target:path) => {
        /// A tail jump (see the comment above).
        #[unsafe(no_mangle)]
        #[unsafe(naked)]
        pub extern "C" fn $name() {
            // SAFETY: as on x86_64.
            core::arch::naked_asm!("b {f}", f = sym $target)
        }
    };
}
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
tail_jump!(evutil_snprintf => libc::snprintf);
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
tail_jump!(evutil_vsnprintf => vsnprintf_sym);

unsafe extern "C" {
    fn inet_ntop(
        af: c_int,
        src: *const c_void,
        dst: *mut c_char,
        len: libc::socklen_t,
    ) -> *const c_char;
    fn inet_pton(af: c_int, src: *const c_char, dst: *mut c_void) -> c_int;
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    #[link_name = "vsnprintf"]
    fn vsnprintf_sym();
}

/// # Safety
///
/// As `inet_ntop(3)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn evutil_inet_ntop(
    af: c_int,
    src: *const c_void,
    dst: *mut c_char,
    len: usize,
) -> *const c_char {
    if src.is_null() || dst.is_null() {
        return std::ptr::null();
    }
    // SAFETY: caller's contract.
    unsafe { inet_ntop(af, src, dst, len as libc::socklen_t) }
}

/// # Safety
///
/// As `inet_pton(3)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn evutil_inet_pton(
    af: c_int,
    src: *const c_char,
    dst: *mut c_void,
) -> c_int {
    if src.is_null() || dst.is_null() {
        return -1;
    }
    // SAFETY: caller's contract.
    unsafe { inet_pton(af, src, dst) }
}

/// # Safety
///
/// As `inet_pton(3)`; `indexp` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn evutil_inet_pton_scope(
    af: c_int,
    src: *const c_char,
    dst: *mut c_void,
    indexp: *mut c_uint,
) -> c_int {
    if src.is_null() || dst.is_null() {
        return -1;
    }
    if !indexp.is_null() {
        // SAFETY: caller's contract.
        unsafe { indexp.write(0) };
    }
    // SAFETY: caller's contract.
    let s = unsafe { CStr::from_ptr(src) }.to_bytes();
    if af != libc::AF_INET6 {
        // SAFETY: caller's contract.
        return unsafe { inet_pton(af, src, dst) };
    }
    let Some(pct) = s.iter().position(|&b| b == b'%') else {
        // SAFETY: caller's contract.
        return unsafe { inet_pton(af, src, dst) };
    };
    let (addr, scope) = (&s[..pct], &s[pct + 1..]);
    let Ok(addr) = std::ffi::CString::new(addr) else {
        return 0;
    };
    let index = match std::str::from_utf8(scope)
        .ok()
        .and_then(|t| t.parse::<c_uint>().ok())
    {
        Some(i) => i,
        None => {
            let Ok(name) = std::ffi::CString::new(scope) else {
                return 0;
            };
            // SAFETY: a NUL-terminated interface name.
            let i = unsafe { libc::if_nametoindex(name.as_ptr()) };
            if i == 0 {
                return 0;
            }
            i
        }
    };
    // SAFETY: caller's contract for `dst`.
    let r = unsafe { inet_pton(af, addr.as_ptr(), dst) };
    if r == 1 && !indexp.is_null() {
        // SAFETY: caller's contract.
        unsafe { indexp.write(index) };
    }
    r
}

fn parse_addr_port(s: &str) -> Option<SocketAddr> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Some(a);
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, 0));
    }
    if let Some(inner) = s.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        return inner
            .parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, 0));
    }
    None
}

/// # Safety
///
/// `s` is a NUL-terminated string; `out` points to `*outlen` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn evutil_parse_sockaddr_port(
    s: *const c_char,
    out: *mut libc::sockaddr,
    outlen: *mut c_int,
) -> c_int {
    guard("evutil_parse_sockaddr_port", -1, || {
        if s.is_null() || out.is_null() || outlen.is_null() {
            return -1;
        }
        // SAFETY: caller's contract.
        let Ok(text) = unsafe { CStr::from_ptr(s) }.to_str() else {
            return -1;
        };
        let Some(addr) = parse_addr_port(text.trim()) else {
            return -1;
        };
        // SAFETY: caller's contract.
        let room = unsafe { outlen.read() };
        match addr {
            SocketAddr::V4(a) => {
                let n = size_of::<libc::sockaddr_in>();
                if (room as usize) < n {
                    return -1;
                }
                // SAFETY: an all-zero sockaddr_in is valid.
                let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
                sin.sin_family = libc::AF_INET as libc::sa_family_t;
                sin.sin_port = a.port().to_be();
                sin.sin_addr.s_addr = u32::from(*a.ip()).to_be();
                // SAFETY: `out` has room for `n` bytes (checked).
                unsafe {
                    std::ptr::write_bytes(out as *mut u8, 0, room as usize);
                    std::ptr::copy_nonoverlapping(&sin as *const _ as *const u8, out as *mut u8, n);
                    outlen.write(n as c_int);
                }
            }
            SocketAddr::V6(a) => {
                let n = size_of::<libc::sockaddr_in6>();
                if (room as usize) < n {
                    return -1;
                }
                // SAFETY: an all-zero sockaddr_in6 is valid.
                let mut sin6: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
                sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sin6.sin6_port = a.port().to_be();
                sin6.sin6_addr.s6_addr = a.ip().octets();
                sin6.sin6_scope_id = a.scope_id();
                // SAFETY: `out` has room for `n` bytes (checked).
                unsafe {
                    std::ptr::write_bytes(out as *mut u8, 0, room as usize);
                    std::ptr::copy_nonoverlapping(
                        &sin6 as *const _ as *const u8,
                        out as *mut u8,
                        n,
                    );
                    outlen.write(n as c_int);
                }
            }
        }
        0
    })
}

/// # Safety
///
/// Both point to sockaddrs of their family's size.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn evutil_sockaddr_cmp(
    a: *const libc::sockaddr,
    b: *const libc::sockaddr,
    include_port: c_int,
) -> c_int {
    if a.is_null() || b.is_null() {
        return a.is_null() as c_int - b.is_null() as c_int;
    }
    // SAFETY: caller's contract.
    let (fa, fb) = unsafe { ((*a).sa_family as c_int, (*b).sa_family as c_int) };
    if fa != fb {
        return fa - fb;
    }
    let ord = |x: std::cmp::Ordering| x as c_int;
    match fa {
        libc::AF_INET => {
            // SAFETY: caller's contract (family AF_INET).
            let (x, y) = unsafe {
                (
                    &*(a as *const libc::sockaddr_in),
                    &*(b as *const libc::sockaddr_in),
                )
            };
            let c = u32::from_be(x.sin_addr.s_addr).cmp(&u32::from_be(y.sin_addr.s_addr));
            if c.is_ne() || include_port == 0 {
                return ord(c);
            }
            ord(u16::from_be(x.sin_port).cmp(&u16::from_be(y.sin_port)))
        }
        libc::AF_INET6 => {
            // SAFETY: caller's contract (family AF_INET6).
            let (x, y) = unsafe {
                (
                    &*(a as *const libc::sockaddr_in6),
                    &*(b as *const libc::sockaddr_in6),
                )
            };
            let c = x.sin6_addr.s6_addr.cmp(&y.sin6_addr.s6_addr);
            if c.is_ne() || include_port == 0 {
                return ord(c);
            }
            ord(u16::from_be(x.sin6_port).cmp(&u16::from_be(y.sin6_port)))
        }
        _ => 1,
    }
}

/// # Safety
///
/// Both are NUL-terminated strings.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn evutil_ascii_strcasecmp(a: *const c_char, b: *const c_char) -> c_int {
    // SAFETY: caller's contract.
    unsafe { evutil_ascii_strncasecmp(a, b, usize::MAX) }
}

/// # Safety
///
/// Both are NUL-terminated strings (or at least `n` bytes long).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn evutil_ascii_strncasecmp(
    a: *const c_char,
    b: *const c_char,
    n: usize,
) -> c_int {
    for i in 0..n {
        // SAFETY: caller's contract: reading stops at the first NUL of either string.
        let (x, y) = unsafe { (*a.add(i) as u8, *b.add(i) as u8) };
        let (x, y) = (x.to_ascii_lowercase(), y.to_ascii_lowercase());
        if x != y {
            return if x < y { -1 } else { 1 };
        }
        if x == 0 {
            return 0;
        }
    }
    0
}

/// # Safety
///
/// As `getaddrinfo(3)` (`struct evutil_addrinfo` is the system's `struct addrinfo`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn evutil_getaddrinfo(
    node: *const c_char,
    serv: *const c_char,
    hints: *const libc::addrinfo,
    res: *mut *mut libc::addrinfo,
) -> c_int {
    // SAFETY: caller's contract.
    unsafe { libc::getaddrinfo(node, serv, hints, res) }
}

/// # Safety
///
/// As `freeaddrinfo(3)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn evutil_freeaddrinfo(ai: *mut libc::addrinfo) {
    if !ai.is_null() {
        // SAFETY: caller's contract.
        unsafe { libc::freeaddrinfo(ai) }
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn evutil_gai_strerror(err: c_int) -> *const c_char {
    // SAFETY: gai_strerror returns a static string for any code.
    unsafe { libc::gai_strerror(err) }
}

/// # Safety
///
/// `buf` points to `n` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn evutil_secure_rng_get_bytes(buf: *mut c_void, n: usize) {
    let mut done = 0;
    while done < n {
        // SAFETY: caller's contract; `done < n`.
        let r = unsafe { libc::getrandom((buf as *mut u8).add(done) as *mut c_void, n - done, 0) };
        if r <= 0 {
            if r < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            crate::log::fatal("evutil_secure_rng_get_bytes: getrandom failed");
        }
        done += r as usize;
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn evutil_secure_rng_init() -> c_int {
    0
}

#[unsafe(no_mangle)]
pub extern "C" fn evutil_secure_rng_set_urandom_device_file(_fname: *mut c_char) -> c_int {
    0
}

#[unsafe(no_mangle)]
pub extern "C" fn evutil_secure_rng_add_bytes(_dat: *const c_char, _len: usize) {}

/// `struct evutil_monotonic_timer` (opaque to C).
#[derive(Debug)]
pub struct MonotonicTimer {
    _flags: c_int,
}

#[unsafe(no_mangle)]
pub extern "C" fn evutil_monotonic_timer_new() -> *mut MonotonicTimer {
    Box::into_raw(Box::new(MonotonicTimer { _flags: 0 }))
}

/// # Safety
///
/// `t` is NULL or from `evutil_monotonic_timer_new`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn evutil_monotonic_timer_free(t: *mut MonotonicTimer) {
    if !t.is_null() {
        // SAFETY: caller's contract.
        drop(unsafe { Box::from_raw(t) })
    }
}

/// # Safety
///
/// `t` is NULL or from `evutil_monotonic_timer_new`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn evutil_configure_monotonic_time(
    t: *mut MonotonicTimer,
    flags: c_int,
) -> c_int {
    if t.is_null() {
        return -1;
    }
    // SAFETY: caller's contract.
    unsafe { (*t)._flags = flags };
    0
}

/// # Safety
///
/// `tp` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn evutil_gettime_monotonic(
    t: *mut MonotonicTimer,
    tp: *mut libc::timeval,
) -> c_int {
    if t.is_null() || tp.is_null() {
        return -1;
    }
    // SAFETY: caller's contract.
    unsafe { tp.write(crate::base::mono()) };
    0
}

/// # Safety
///
/// `date` points to `datelen` writable bytes; `tm` is NULL or a valid `struct tm`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn evutil_date_rfc1123(
    date: *mut c_char,
    datelen: usize,
    tm: *const libc::tm,
) -> c_int {
    guard("evutil_date_rfc1123", -1, || {
        const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        // SAFETY: an all-zero tm is valid.
        let mut now: libc::tm = unsafe { std::mem::zeroed() };
        let t = if tm.is_null() {
            // SAFETY: `time(NULL)`, then gmtime_r into a local tm.
            unsafe {
                let secs = libc::time(std::ptr::null_mut());
                libc::gmtime_r(&secs, &mut now);
            }
            &now
        } else {
            // SAFETY: caller's contract.
            unsafe { &*tm }
        };
        let s = format!(
            "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
            DAYS[t.tm_wday.rem_euclid(7) as usize],
            t.tm_mday,
            MONTHS[t.tm_mon.rem_euclid(12) as usize],
            1900 + t.tm_year,
            t.tm_hour,
            t.tm_min,
            t.tm_sec
        );
        if date.is_null() || datelen == 0 {
            return s.len() as c_int;
        }
        let n = s.len().min(datelen - 1);
        // SAFETY: caller's contract: `datelen` writable bytes; `n < datelen`.
        unsafe {
            std::ptr::copy_nonoverlapping(s.as_ptr(), date as *mut u8, n);
            date.add(n).write(0);
        }
        s.len() as c_int
    })
}
