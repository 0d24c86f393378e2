"""Bosch BME280 temperature, pressure and humidity sensor on I2C.

Each read triggers one forced-mode measurement, so the sensor sleeps between polls and
does not self-heat. Register map, sequencing and compensation formulas follow the
datasheet (BST-BME280-DS002): calibration words at 0x88..0xA1 and 0xE1..0xE7 (section
5.4.10 / table 16), the double-precision compensation of section 8.1. The math lives
in plain functions below so it can be checked against the datasheet's numbers without
a sensor.
"""

from __future__ import annotations

import contextlib
import errno
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Optional, Protocol

from beam_agent.drivers.base import Driver, DriverError, Option
from beam_agent.reading import Sample

CHIP_ID = 0x60
REG_CHIP_ID = 0xD0
REG_CALIB_TP = 0x88  # 0x88..0xA1: 26 bytes, dig_T1..dig_P9, a reserved byte, dig_H1
REG_CALIB_H = 0xE1  # 0xE1..0xE7: 7 bytes, dig_H2..dig_H6
REG_CTRL_HUM = 0xF2
REG_STATUS = 0xF3
REG_CTRL_MEAS = 0xF4
REG_CONFIG = 0xF5
REG_DATA = 0xF7  # 0xF7..0xFE: press_msb..xlsb, temp_msb..xlsb, hum_msb..lsb

STATUS_MEASURING = 0x08
STATUS_IM_UPDATE = 0x01
MODE_FORCED = 0x01
SKIPPED_20BIT = 0x80000  # what the data registers hold after reset or a skipped measurement
SKIPPED_16BIT = 0x8000

OVERSAMPLING_CODES = {1: 1, 2: 2, 4: 3, 8: 4, 16: 5}  # times -> osrs_x register bits
FILTER_CODES = {0: 0, 2: 1, 4: 2, 8: 3, 16: 4}  # IIR coefficient -> filter bits

READY_TIMEOUT_S = 0.1
"""Extra time allowed beyond the datasheet's maximum measurement time."""


class I2CBus(Protocol):
    """The part of smbus2.SMBus this driver uses; tests provide a register map behind it."""

    def read_byte_data(self, i2c_addr: int, register: int) -> int: ...

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> list[int]: ...

    def write_byte_data(self, i2c_addr: int, register: int, value: int) -> None: ...

    def close(self) -> None: ...


def open_smbus(bus: int) -> I2CBus:
    """The real bus: /dev/i2c-<bus>. Imported here so check-config never needs smbus2."""
    from smbus2 import SMBus

    smbus: I2CBus = SMBus(bus)
    return smbus


@dataclass(frozen=True)
class Calibration:
    """The trimming parameters each BME280 carries in its NVM (datasheet table 16)."""

    dig_T1: int
    dig_T2: int
    dig_T3: int
    dig_P1: int
    dig_P2: int
    dig_P3: int
    dig_P4: int
    dig_P5: int
    dig_P6: int
    dig_P7: int
    dig_P8: int
    dig_P9: int
    dig_H1: int
    dig_H2: int
    dig_H3: int
    dig_H4: int
    dig_H5: int
    dig_H6: int


def parse_calibration(tp: bytes, h: bytes) -> Calibration:
    """Decode the 26 bytes from 0x88 and the 7 bytes from 0xE1 (little-endian words)."""
    if len(tp) != 26 or len(h) != 7:
        raise ValueError(f"calibration blocks must be 26 and 7 bytes, got {len(tp)} and {len(h)}")
    t1, t2, t3, p1, p2, p3, p4, p5, p6, p7, p8, p9 = struct.unpack_from("<HhhHhhhhhhhh", tp)
    h1 = tp[25]
    h2, h3, e4, e5, e6, h6 = struct.unpack("<hBbBbb", h)
    # dig_H4 and dig_H5 are signed 12-bit values sharing the nibbles of 0xE5.
    h4 = (e4 << 4) | (e5 & 0x0F)
    h5 = (e6 << 4) | (e5 >> 4)
    return Calibration(t1, t2, t3, p1, p2, p3, p4, p5, p6, p7, p8, p9, h1, h2, h3, h4, h5, h6)


def compensate_temperature(adc_t: int, cal: Calibration) -> tuple[float, int]:
    """Temperature in °C and t_fine, which the pressure and humidity formulas need."""
    var1 = (adc_t / 16384.0 - cal.dig_T1 / 1024.0) * cal.dig_T2
    var2 = (adc_t / 131072.0 - cal.dig_T1 / 8192.0) ** 2 * cal.dig_T3
    t_fine = int(var1 + var2)  # the datasheet's BME280_S32_t cast truncates toward zero
    return (var1 + var2) / 5120.0, t_fine


def compensate_pressure(adc_p: int, t_fine: float, cal: Calibration) -> Optional[float]:
    """Pressure in Pa; None when the calibration would divide by zero (a corrupt NVM)."""
    var1 = t_fine / 2.0 - 64000.0
    var2 = var1 * var1 * cal.dig_P6 / 32768.0
    var2 = var2 + var1 * cal.dig_P5 * 2.0
    var2 = var2 / 4.0 + cal.dig_P4 * 65536.0
    var1 = (cal.dig_P3 * var1 * var1 / 524288.0 + cal.dig_P2 * var1) / 524288.0
    var1 = (1.0 + var1 / 32768.0) * cal.dig_P1
    if var1 == 0.0:
        return None
    pressure = 1048576.0 - adc_p
    pressure = (pressure - var2 / 4096.0) * 6250.0 / var1
    var1 = cal.dig_P9 * pressure * pressure / 2147483648.0
    var2 = pressure * cal.dig_P8 / 32768.0
    return pressure + (var1 + var2 + cal.dig_P7) / 16.0


def compensate_humidity(adc_h: int, t_fine: float, cal: Calibration) -> float:
    """Relative humidity in %, clamped to 0..100 as the datasheet does."""
    var_h = t_fine - 76800.0
    var_h = (adc_h - (cal.dig_H4 * 64.0 + cal.dig_H5 / 16384.0 * var_h)) * (
        cal.dig_H2
        / 65536.0
        * (1.0 + cal.dig_H6 / 67108864.0 * var_h * (1.0 + cal.dig_H3 / 67108864.0 * var_h))
    )
    var_h = var_h * (1.0 - cal.dig_H1 * var_h / 524288.0)
    return min(max(var_h, 0.0), 100.0)


def altitude_m(pressure_hpa: float, sea_level_hpa: float) -> float:
    """Altitude from pressure with the international barometric formula (Bosch BMP180 DS)."""
    return 44330.0 * (1.0 - float((pressure_hpa / sea_level_hpa) ** (1.0 / 5.255)))


def split_raw(data: bytes) -> tuple[int, int, int]:
    """adc_P, adc_T (20 bits) and adc_H (16 bits) from the 8 bytes at 0xF7."""
    adc_p = (data[0] << 12) | (data[1] << 4) | (data[2] >> 4)
    adc_t = (data[3] << 12) | (data[4] << 4) | (data[5] >> 4)
    adc_h = (data[6] << 8) | data[7]
    return adc_p, adc_t, adc_h


def max_measurement_s(osrs_t: int, osrs_p: int, osrs_h: int) -> float:
    """Datasheet appendix B: the longest a forced measurement can take."""
    return (1.25 + 2.3 * osrs_t + (2.3 * osrs_p + 0.575) + (2.3 * osrs_h + 0.575)) / 1000.0


def compensate(
    data: bytes, cal: Calibration, sea_level_hpa: Optional[float] = None
) -> dict[str, Any]:
    """The payload for one raw measurement."""
    adc_p, adc_t, adc_h = split_raw(data)
    temperature, t_fine = compensate_temperature(adc_t, cal)
    pressure = compensate_pressure(adc_p, t_fine, cal)
    pressure_hpa = None if pressure is None else pressure / 100.0
    payload: dict[str, Any] = {
        "temperature_c": round(temperature, 2),
        "pressure_hpa": None if pressure_hpa is None else round(pressure_hpa, 3),
        "humidity_pct": round(compensate_humidity(adc_h, t_fine, cal), 3),
    }
    if sea_level_hpa is not None:
        payload["altitude_m"] = (
            round(altitude_m(pressure_hpa, sea_level_hpa), 2)
            if pressure_hpa is not None and pressure_hpa > 0
            else None
        )
    return payload


def _oversampling(name: str, what: str) -> Option:
    return Option(
        name,
        int,
        1,
        choices=tuple(OVERSAMPLING_CODES),
        help=f"{what} oversampling (1, 2, 4, 8 or 16 samples): less noise, longer measurement",
    )


class BME280Driver(Driver):
    type_name = "bme280"
    description = "Bosch BME280 temperature, pressure and humidity over I2C (forced mode)."
    options = (
        Option("bus", int, 1, minimum=0, help="I2C bus number: /dev/i2c-<bus>"),
        Option(
            "address",
            int,
            0x76,
            choices=(0x76, 0x77),
            help="I2C address: 0x76 (118) with SDO to GND, 0x77 (119) with SDO to VDDIO",
        ),
        _oversampling("temperature_oversampling", "temperature"),
        _oversampling("pressure_oversampling", "pressure"),
        _oversampling("humidity_oversampling", "humidity"),
        Option(
            "iir_filter",
            int,
            0,
            choices=tuple(FILTER_CODES),
            help="IIR filter coefficient for pressure and temperature (0 = off)",
        ),
        Option(
            "sea_level_hpa",
            float,
            None,
            minimum=300.0,
            maximum=1100.0,
            help="sea-level pressure for this place; when set, altitude_m is reported",
        ),
    )

    bus_factory: ClassVar[Callable[[int], I2CBus]] = open_smbus
    """How the bus is opened; tests put a register map here instead of /dev/i2c-N."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        super().__init__(self.validate_options(options))
        self.bus_number: int = self.config["bus"]
        self.address: int = self.config["address"]
        self.osrs = (
            self.config["temperature_oversampling"],
            self.config["pressure_oversampling"],
            self.config["humidity_oversampling"],
        )
        self.sea_level_hpa: Optional[float] = self.config["sea_level_hpa"]
        self.bus: Optional[I2CBus] = None
        self.calibration: Optional[Calibration] = None

    @classmethod
    def validate_options(cls, raw: Mapping[str, Any]) -> dict[str, Any]:
        # None is how a validated config says "no sea_level_hpa" (TOML itself has no null),
        # so options that were validated once validate again unchanged.
        if "sea_level_hpa" in raw and raw["sea_level_hpa"] is None:
            raw = {key: value for key, value in raw.items() if key != "sea_level_hpa"}
        return super().validate_options(raw)

    @property
    def where(self) -> str:
        return f"BME280 at 0x{self.address:02x} on /dev/i2c-{self.bus_number}"

    def read(self) -> list[Sample]:
        try:
            bus, calibration = self._connect()
            data = self._measure(bus)
        except OSError as exc:  # reopen and re-check the chip on the next read
            self.close()
            if exc.errno in (errno.EREMOTEIO, errno.ENXIO):  # nobody acknowledged
                raise DriverError(
                    f"{self.where}: no answer ({exc.strerror}); check wiring, power and address"
                ) from None
            raise DriverError(f"{self.where}: I2C transfer failed: {exc}") from None
        except DriverError:
            self.close()
            raise
        return [self.sample(compensate(data, calibration, self.sea_level_hpa))]

    def _connect(self) -> tuple[I2CBus, Calibration]:
        """Open the bus and check the chip; calibration is read once per connection."""
        if self.bus is not None and self.calibration is not None:
            return self.bus, self.calibration
        try:
            self.bus = type(self).bus_factory(self.bus_number)
        except OSError as exc:
            raise DriverError(f"cannot open I2C bus /dev/i2c-{self.bus_number}: {exc}") from None
        chip_id = self.bus.read_byte_data(self.address, REG_CHIP_ID)
        if chip_id != CHIP_ID:
            raise DriverError(
                f"{self.where}: chip id is 0x{chip_id:02x}, not 0x{CHIP_ID:02x}; "
                "is this a BME280 (a BMP280 says 0x58)?"
            )
        self._wait(self.bus, STATUS_IM_UPDATE, READY_TIMEOUT_S, "copying its calibration")
        tp = bytes(self.bus.read_i2c_block_data(self.address, REG_CALIB_TP, 26))
        h = bytes(self.bus.read_i2c_block_data(self.address, REG_CALIB_H, 7))
        try:
            self.calibration = parse_calibration(tp, h)
        except ValueError as exc:
            raise DriverError(f"{self.where}: {exc}") from None
        return self.bus, self.calibration

    def _measure(self, bus: I2CBus) -> bytes:
        """One forced-mode measurement: configure, trigger, wait for it, burst-read the data."""
        osrs_t, osrs_p, osrs_h = (OVERSAMPLING_CODES[n] for n in self.osrs)
        # ctrl_hum only takes effect after the following write to ctrl_meas (datasheet 5.4.3).
        bus.write_byte_data(self.address, REG_CTRL_HUM, osrs_h)
        bus.write_byte_data(self.address, REG_CONFIG, FILTER_CODES[self.config["iir_filter"]] << 2)
        bus.write_byte_data(
            self.address, REG_CTRL_MEAS, (osrs_t << 5) | (osrs_p << 2) | MODE_FORCED
        )
        longest = max_measurement_s(*self.osrs)
        time.sleep(longest * 0.8)  # the typical time is ~80% of the maximum
        self._wait(bus, STATUS_MEASURING, longest + READY_TIMEOUT_S, "measuring")
        data = bytes(bus.read_i2c_block_data(self.address, REG_DATA, 8))
        if len(data) != 8:
            raise DriverError(f"{self.where}: short data read ({len(data)} of 8 bytes)")
        adc_p, adc_t, adc_h = split_raw(data)
        if (adc_p, adc_t, adc_h) == (SKIPPED_20BIT, SKIPPED_20BIT, SKIPPED_16BIT):
            raise DriverError(
                f"{self.where}: data registers hold their reset values: the measurement did not run"
            )
        return data

    def _wait(self, bus: I2CBus, bit: int, timeout_s: float, doing: str) -> None:
        deadline = time.monotonic() + timeout_s
        while bus.read_byte_data(self.address, REG_STATUS) & bit:
            if time.monotonic() > deadline:
                raise DriverError(f"{self.where}: still {doing} after {timeout_s:.3f} s")
            time.sleep(0.001)

    def close(self) -> None:
        bus, self.bus, self.calibration = self.bus, None, None
        if bus is not None:
            with contextlib.suppress(OSError):
                bus.close()
