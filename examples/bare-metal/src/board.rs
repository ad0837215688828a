//! The two emulated boards: the core clock, and the hardware timer whose interrupt plays a
//! sensor that produces samples.

/// An interrupt number, for the NVIC.
#[derive(Clone, Copy, Debug)]
pub struct Irq(pub u16);

// SAFETY: `number` returns a valid device interrupt number of the board (the constants below,
// from the board's data sheet / QEMU's machine model), as the trait requires.
unsafe impl cortex_m::interrupt::InterruptNumber for Irq {
    fn number(self) -> u16 {
        self.0
    }
}

/// Writes a 32-bit device register.
fn write(addr: usize, value: u32) {
    // SAFETY: only called with the addresses of this board's SYSCTL and timer registers (the
    // constants below): aligned, always mapped, and used by nothing else in this program.
    unsafe { core::ptr::write_volatile(addr as *mut u32, value) }
}

/// Reads a 32-bit device register.
#[allow(dead_code)]
fn read(addr: usize) -> u32 {
    // SAFETY: as in `write`.
    unsafe { core::ptr::read_volatile(addr as *const u32) }
}

#[cfg(all(feature = "lm3s6965evb", feature = "mps2-an386"))]
compile_error!("enable exactly one board feature");

/// TI Stellaris LM3S6965 (Cortex-M3); its general-purpose timer 0 is the sensor.
#[cfg(feature = "lm3s6965evb")]
mod imp {
    use super::{read, write, Irq};

    pub const NAME: &str = "lm3s6965evb (Cortex-M3)";
    /// Out of reset the system clock is the 200 MHz PLL divided by 16 (RCC.SYSDIV = 15).
    pub const CORE_HZ: u32 = 12_500_000;
    /// GPTM timer 0, sub-timer A.
    pub const TIMER_IRQ: Irq = Irq(19);
    /// Pended by software only: GPTM timer 0's sub-timer B, which stays disabled.
    pub const PROBE_IRQ: Irq = Irq(20);

    const SYSCTL_RCGC1: usize = 0x400F_E104;
    const GPTM0: usize = 0x4003_0000;
    const CFG: usize = GPTM0; // 0: one 32-bit timer
    const TAMR: usize = GPTM0 + 0x04; // 2: periodic
    const CTL: usize = GPTM0 + 0x0C; // bit 0: timer A enabled
    const IMR: usize = GPTM0 + 0x18; // bit 0: time-out interrupt unmasked
    const ICR: usize = GPTM0 + 0x24; // bit 0: clear the time-out interrupt
    const TAILR: usize = GPTM0 + 0x28; // the reload value

    /// Starts a periodic interrupt every `period` core clock cycles.
    pub fn start_timer(period: u32) {
        write(SYSCTL_RCGC1, read(SYSCTL_RCGC1) | 1 << 16); // clock the timer
        write(CTL, 0);
        write(CFG, 0);
        write(TAMR, 2);
        write(TAILR, period - 1);
        write(ICR, 1);
        write(IMR, 1);
        write(CTL, 1);
    }

    /// Stops it; no interrupt is raised afterwards.
    pub fn stop_timer() {
        write(CTL, 0);
        write(IMR, 0);
        write(ICR, 1);
    }

    /// Acknowledges the interrupt (in its handler).
    pub fn clear_timer_interrupt() {
        write(ICR, 1);
    }
}

/// ARM MPS2 with the AN386 FPGA image (Cortex-M4F); its CMSDK APB timer 0 is the sensor.
#[cfg(feature = "mps2-an386")]
mod imp {
    use super::{write, Irq};

    pub const NAME: &str = "mps2-an386 (Cortex-M4)";
    /// The board's 25 MHz system clock drives the core and the APB timers.
    pub const CORE_HZ: u32 = 25_000_000;
    /// CMSDK APB timer 0.
    pub const TIMER_IRQ: Irq = Irq(8);
    /// Pended by software only: CMSDK APB timer 1, which stays disabled.
    pub const PROBE_IRQ: Irq = Irq(9);

    const TIMER0: usize = 0x4000_0000;
    const CTRL: usize = TIMER0; // bit 0: enable, bit 3: interrupt enable
    const VALUE: usize = TIMER0 + 0x04;
    const RELOAD: usize = TIMER0 + 0x08;
    const INTCLEAR: usize = TIMER0 + 0x0C; // write 1: clear the interrupt

    /// Starts a periodic interrupt every `period` core clock cycles.
    pub fn start_timer(period: u32) {
        write(CTRL, 0);
        write(RELOAD, period - 1);
        write(VALUE, period - 1);
        write(INTCLEAR, 1);
        write(CTRL, 1 | 1 << 3);
    }

    /// Stops it; no interrupt is raised afterwards.
    pub fn stop_timer() {
        write(CTRL, 0);
        write(INTCLEAR, 1);
    }

    /// Acknowledges the interrupt (in its handler).
    pub fn clear_timer_interrupt() {
        write(INTCLEAR, 1);
    }
}

#[cfg(not(any(feature = "lm3s6965evb", feature = "mps2-an386")))]
compile_error!("enable a board feature: lm3s6965evb or mps2-an386");

#[cfg(any(feature = "lm3s6965evb", feature = "mps2-an386"))]
pub use imp::*;
